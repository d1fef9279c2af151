"""Trained bundles that take raw text: save, load, digest, predict or generate."""
