"""Retraining on new data: merge what arrived, and run the pipeline only when the data changed.

    merge-incoming ─> decide ─> classification (the whole pipeline, as a subflow) when needed
    merge-incoming-pairs ─> decide ─> seq2seq     (a seq2seq preset: new pairs join train)

Files dropped into the incoming folder (``data/incoming/`` by default), or added with
``lowlm data add FILE``, are checked and merged into the preset's corpus with duplicates dropped
(``lowlm.data.incoming``; pairs: ``lowlm.data.incoming_pairs``): new rows join train, the validation and test splits stay as they were. The
merged corpus's content digest is compared with the ``data_digest.content`` tag of the model's
current champion: equal digests mean nothing to do, and the reason is logged (Prefect log, a
``retrain-decision`` artifact, and the flow's result). Otherwise the classification flow runs on
the merged corpus and its registry gate decides whether the new version becomes champion.

Run it:  python -m flows.retrain sample        (the `retrain/sample` deployment runs it on a schedule)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow

from flows.classification import classification
from flows.seq2seq import seq2seq
from lowlm.config import PIPELINES, load_pipeline_config, pipeline_task
from tasks.retrain import decide, merge, merge_pairs, record_reason

DEFAULT_INCOMING = "data/incoming"


@flow(name="retrain")
def retrain(preset: str = "sample", incoming_dir: str = DEFAULT_INCOMING, force: bool = False,
            overrides: dict[str, Any] | None = None) -> dict:
    """Merge new data into the preset's corpus; retrain and let the gate decide when the data changed.

    preset: a preset under configs/ or a YAML path (classification: labelled rows; seq2seq: pairs). incoming_dir: where new files
    arrive. force: retrain even when the data is unchanged. overrides: dotted settings, e.g.
    {"train.epochs": 5}.
    """
    from flows.runtime import guard_api_run

    named = {"preset": preset} if Path(preset).suffix in (".yaml", ".yml") or "/" in preset else {}
    guard_api_run(None, incoming_dir=incoming_dir, **named)  # before the preset file is even read
    task = pipeline_task(preset)
    config = load_pipeline_config(preset, overrides or {}, PIPELINES[task])
    guard_api_run(config)
    out_dir = str(Path(config.work_dir) / "retrain" / config.registry.model_name)
    merged = (merge_pairs if task == "seq2seq" else merge)(config.corpus, incoming_dir, out_dir)
    decision = decide(config.registry.model_name, merged["digest"], merged["split_digests"], force)
    result = {"decision": decision, "merged": {k: merged[k] for k in ("digest", "new_rows", "dropped", "accepted",
                                                                       "rejected", "relabelled", "new_labels")}}
    if not decision["retrain"]:
        return result
    corpus_config = type(config.corpus).model_validate(merged["config"])
    config = config.model_copy(update={"corpus": corpus_config})
    pipeline = (seq2seq if task == "seq2seq" else classification)(config)
    record_reason(pipeline["mlflow_run_id"], decision["reason"], merged["digest"])
    return {**result, "pipeline": pipeline}


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.retrain [PRESET] [--force] [--incoming DIR] [--set k=v]``: ``lowlm retrain``."""
    from flows.cli import alias

    return alias(["retrain"], argv)


def describe(result: dict) -> str:
    """What a retrain did, in a few lines for a terminal."""
    d, m = result["decision"], result["merged"]
    lines = [f"{'retrained' if d['retrain'] else 'skipped'}: {d['reason']}",
             f"corpus {m['digest']}: {m['new_rows']} new row(s) from {len(m['accepted'])} file(s), "
             f"dropped {m['dropped']}"]
    if m.get("new_labels"):
        lines.append(f"new labels admitted: {', '.join(m['new_labels'])} (rows of each held out in validation and "
                     f"test, so the gate scores both models on them)")
    lines += [f"rejected {file}: {why}" for file, why in m["rejected"].items()]
    if "pipeline" in result:
        model = result["pipeline"]["model"]
        lines.append(f"registered model: {model['name']}  version {model['version']}  alias {model['alias']}"
                     f"  ({model['reason']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
