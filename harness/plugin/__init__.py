"""The pytest integration of `pytest scenarios/`: options, the run's lifecycle, reporting."""
