"""Robustness: data augmentation (nlpaug) and adversarial attacks."""
