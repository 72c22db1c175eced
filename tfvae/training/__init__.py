"""Training: the Trainer (strategy, compiled steps), the outer loop of a run, multi-worker, progress."""
