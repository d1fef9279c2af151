"""Robustness: data augmentation (nlpaug, back-translation), adversarial attacks, seq2seq source noise."""
