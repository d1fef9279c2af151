"""Metrics (classification, BLEU/chrF/ROUGE) and plots."""
