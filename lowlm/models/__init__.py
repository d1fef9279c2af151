"""Model architectures, each plain PyTorch, readable in one file, built from its config (``kinds``)."""
