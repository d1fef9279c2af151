"""Text to ids: tokenizers (word, BPE, character) and padded, length-grouped batches."""
