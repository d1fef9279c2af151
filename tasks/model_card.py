"""A model card (Markdown) for every registered version: what it was trained on, how well it does, what
it depends on, and where it falls short. ``register`` logs it as ``model_card.md`` and sets it as the
version's description, so the MLflow UI shows it on the version page; ``optimize`` appends its variants.
"""

from __future__ import annotations

import json

OPTIMIZED_HEADING = "## Optimized variants"
CONFIG_HEADING = "## Config"
DESCRIPTION_LIMIT = 5000  # characters MLflow's SQL stores keep in a version's description


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(name: str, version: str, task: str, corpus: dict, trained: dict, evaluation: dict,
               tags: dict, config: dict | None = None, plots: list[str] | None = None) -> str:
    """The card's Markdown. ``tags``: the version's tags (digests, upstream models); ``config``: the
    pipeline config as JSON; ``plots``: artifact paths of the version's training and evaluation plots."""
    metrics = evaluation.get("metrics", {})
    lines = [f"# {name} version {version}", "",
             f"A lowlm `{task}` model (`{trained.get('kind') or (config or {}).get('model', {}).get('kind', task)}`), "
             f"trained in MLflow run `{trained.get('run_id', '?')}` at commit `{tags.get('git_commit', '?')}` "
             f"(config hash `{tags.get('config_hash', '?')}`, model digest `{trained.get('digest', '?')}`).", "",
             "## Data", ""]
    rows = corpus.get("rows", {})
    lines += _table(["split", "rows", "digest", "source"],
                    [[s, rows.get(s, "?"), f"`{d}`", corpus.get("sources", {}).get(s, "")]
                     for s, d in corpus.get("digests", {}).items()])
    if corpus.get("labels"):
        lines += ["", f"{len(corpus['labels'])} classes: " + ", ".join(f"`{x}`" for x in corpus["labels"][:30])
                  + (" ..." if len(corpus["labels"]) > 30 else "")]
    lines += ["", "## Metrics (test split)", ""]
    lines += _table(["metric", "value"], [[k, _number(v)] for k, v in sorted(metrics.items())])
    if evaluation.get("robustness"):
        lines += ["", f"Under attack: {evaluation['robustness']}"]
    upstream = []
    if tags.get("pretrained_uri"):
        upstream.append(["language model (encoder start)", tags["pretrained_uri"], tags.get("pretrained_version", ""),
                         f"`{tags.get('pretrained_digest', '')}`"])
    if tags.get("adversarial_target_digest"):
        upstream.append(["attacked model (adversarial rows)", name, tags.get("adversarial_target_version", ""),
                         f"`{tags['adversarial_target_digest']}`"])
    if tags.get("data_digest.base_model"):
        upstream.append(["base model (few-shot start)", "", "", f"`{tags['data_digest.base_model']}`"])
    lines += ["", "## Upstream models", ""]
    lines += _table(["role", "model", "version", "digest"], upstream) if upstream else ["None: trained from scratch."]
    if plots:
        lines += ["", "## Plots", "", *[f"- `{p}`" for p in plots]]
    lines += ["", "## Known limitations", "", *[f"- {x}" for x in limitations(task, corpus, metrics)]]
    if config:
        lines += ["", CONFIG_HEADING, "", "```json", json.dumps(config, indent=1, default=str), "```"]
    return "\n".join(lines) + "\n"


def limitations(task: str, corpus: dict, metrics: dict) -> list[str]:
    """What the numbers above do not promise, with this version's own figures where there are any."""
    rows = corpus.get("rows", {})
    out = [f"Trained on {rows.get('train', '?')} rows of one corpus and tested on {rows.get('test', '?')} rows of "
           f"the same distribution: text from elsewhere (other domains, registers, languages) may score far lower."]
    if task == "classification":
        out.append("Words outside the training vocabulary are read as one unknown token; the model answers one of "
                   "its classes for any input unless a rejection threshold was fitted.")
        if "test_majority_baseline" in metrics:
            out.append(f"Always answering the most frequent class scores {metrics['test_majority_baseline']:.4f}.")
        if "test_attacked_accuracy" in metrics:
            out.append(f"Accuracy under the configured word/character attack: {metrics['test_attacked_accuracy']:.4f}.")
    elif task == "seq2seq":
        out.append("Generates from a fixed vocabulary: names and rare words are copied only with the pointer "
                   "mechanism, and output is capped at the decoding max_length.")
        if "test_repeated_trigrams" in metrics:
            out.append(f"{metrics['test_repeated_trigrams']:.1f}% of the output's trigrams repeat within an output.")
    elif task == "qa":
        out.append("Answers with a span of the given context only: it cannot say that the context holds no answer "
                   "(SQuAD v1.1), and a context longer than the window is read in windows whose scores are compared "
                   "as they are.")
        if "test_baseline_f1" in metrics:
            out.append(f"The lexical sliding-window baseline scores F1 {metrics['test_baseline_f1']:.1f} on the same "
                       f"test questions.")
    elif task == "lm":
        out.append("A small recurrent language model: it scores and continues short texts; its continuations are "
                   "not fact-checked and reflect its training text.")
    out.append("Low-level model: no pretrained transformer; interpretability is limited to attention and saliency.")
    return out


def description(card: str, artifact: str) -> str:
    """The card as a version description: without the config (in ``artifact``, the full card), within
    the registry's length limit."""
    head = card.split("\n" + CONFIG_HEADING)[0].rstrip("\n")
    note = f"\n\nThe full card, with the pipeline config: `{artifact}`.\n"
    if len(head) + len(note) > DESCRIPTION_LIMIT:
        head = head[: DESCRIPTION_LIMIT - len(note) - 20].rsplit("\n", 1)[0] + "\n\n(shortened)"
    return head + note


def with_variants(card: str, variants: dict) -> str:
    """``card`` with its optimized-variants section (re)written from ``variants`` (optimize's rows)."""
    head = card.split("\n" + OPTIMIZED_HEADING)[0].rstrip("\n")
    rows = [[name, (r.get("registered") or {}).get("version", "not registered"), f"{r['size_ratio']:.2f}x",
             f"{r['batch1_speedup']:.2f}x", f"{r['metric_drop']:+.2f}"] for name, r in variants.items()]
    return "\n".join([head, "", OPTIMIZED_HEADING, "",
                      *_table(["variant", "version", "smaller", "batch-1 faster", "metric lost (points)"], rows)]) + "\n"
