"""Evaluation: held-out bounds and diagnostics, semi-supervised accuracy, sample quality, figures,
the GMM baseline."""
