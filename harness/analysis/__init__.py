"""Estimators over trial records. They take pandas frames or numpy arrays, never a live platform,
so each one is tested on recorded or synthetic data."""
