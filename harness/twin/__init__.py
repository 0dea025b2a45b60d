"""The twin: the model's parameters fitted to one run, checked on trials the fit did not see, and
asked what-if questions in virtual time (DESIGN section 8).

- stored.py: a stored trial's spec and its kept events, read back from the run folder;
- fit.py: the parameters with their evidence (queue, buffer, dispatch latency, turnaround, sender);
- service.py: the per-event overhead (and the subscriber's share of the CPU) from mu at several costs;
- heldout.py: which trials are held out, the twin run on their specs, the errors;
- calibrate.py: fit + held-out check = the Twin record (twin.json);
- whatif.py: `wfpcap predict`: rates, costs, cost distributions, traces, headroom.
"""
