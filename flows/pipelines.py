"""The flow of each kind of pipeline, by the ``task`` its config declares: what ``lowlm run`` runs."""

from __future__ import annotations

from flows.classification import classification
from flows.language_model import language_model
from flows.qa import qa
from flows.seq2seq import seq2seq

FLOWS = {"classification": classification, "seq2seq": seq2seq, "lm": language_model, "qa": qa}


def headline(task: str, m: dict) -> str:
    """One line of the run's test metrics for a terminal."""
    if task == "seq2seq":
        beam = f", beam {m['test_bleu_beam']:.2f}" if "test_bleu_beam" in m else ""
        return (f"test BLEU {m['test_bleu']:.2f} (decoding chosen on validation; greedy {m['test_bleu_greedy']:.2f}"
                f"{beam})   chrF {m['test_chrf']:.2f}   ROUGE-L {m['test_rougeL']:.2f}")
    if task == "qa":
        baseline = (f" (lexical baseline: EM {m['test_baseline_exact_match']:.1f}, F1 {m['test_baseline_f1']:.1f})"
                    if "test_baseline_f1" in m else "")
        return f"test exact match {m['test_exact_match']:.1f}   F1 {m['test_f1']:.1f}{baseline}"
    if task == "lm":
        return f"test perplexity {m['test_perplexity']:.2f}   {m['tokens_per_second']:.0f} training tokens/s"
    baseline = f" (majority baseline {m['test_majority_baseline']:.4f})" if "test_majority_baseline" in m else ""
    return f"test accuracy {m['test_accuracy']:.4f}{baseline}   macro-F1 {m['test_macro_f1']:.4f}"
