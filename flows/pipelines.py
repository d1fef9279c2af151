"""The flow of each kind of pipeline, by the ``task`` its config declares: what ``lowlm run`` runs."""

from __future__ import annotations

from flows.classification import classification
from flows.seq2seq import seq2seq

FLOWS = {"classification": classification, "seq2seq": seq2seq}


def headline(task: str, m: dict) -> str:
    """One line of the run's test metrics for a terminal."""
    if task == "seq2seq":
        return (f"test BLEU {m['test_bleu']:.2f} (greedy {m['test_bleu_greedy']:.2f})   chrF {m['test_chrf']:.2f}   "
                f"ROUGE-L {m['test_rougeL']:.2f}")
    baseline = f" (majority baseline {m['test_majority_baseline']:.4f})" if "test_majority_baseline" in m else ""
    return f"test accuracy {m['test_accuracy']:.4f}{baseline}   macro-F1 {m['test_macro_f1']:.4f}"
