"""Training: the task config, the trainer's builders, losses, optimiser, callbacks, distribution."""
