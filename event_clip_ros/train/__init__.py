"""Event-encoder training: losses, distributed helpers, datasets and the training engine."""
