"""Tuning: the keras-tuner search over a run's hyperparameters, its settings and its report."""
