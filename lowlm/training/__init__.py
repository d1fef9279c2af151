"""The one training loop (``Trainer``), its objectives, optimizers and callbacks, and fine-tuning."""
