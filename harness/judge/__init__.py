"""Decisions over stored results: each estimate's measured spread, the regression gate, configurations
side by side, one configuration over time."""
