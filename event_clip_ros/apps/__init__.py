"""Applications built on the event layer and the model (shared by the CLI, the node and evaluation)."""
