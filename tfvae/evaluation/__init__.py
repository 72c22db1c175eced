"""Evaluation: held-out bounds and diagnostics, semi-supervised accuracy, figures, the GMM baseline."""
