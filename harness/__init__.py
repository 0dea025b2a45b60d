"""wfp-capacity-harness: measure how the WFP net-event path queues, buffers and loses events."""
__version__ = "0.1.0"
