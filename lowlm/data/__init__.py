"""Corpora: labelled text, source -> target pairs, incoming data for retraining; their digests."""
