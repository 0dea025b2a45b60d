"""Experiments: searches and comparisons that call platform.run_trial repeatedly and write every
trial to the result store before the next one starts."""
