"""Retraining stages: merge the data that arrived, then decide whether the champion is out of date.

Neither is cached: merging moves files, and the decision depends on the registry, not on inputs.
"""

from __future__ import annotations

from mlflow import MlflowClient
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from lowlm.config import CorpusConfig, PairCorpusConfig
from lowlm.data.corpus import load_corpus
from lowlm.data.incoming import merge_incoming
from lowlm.data.incoming_pairs import merge_incoming_pairs
from tasks.registry import CHAMPION, registry_versions
from tasks._stage import tracking_uri

SPLITS = ("train", "validation", "test")


@task(name="merge-incoming-pairs")
def merge_pairs(corpus: PairCorpusConfig, incoming_dir: str, out_dir: str) -> dict:
    """Seq2seq: accept waiting pair files (bad ones go to ``rejected/``), merge into train, digest."""
    logger = get_run_logger()
    merged = merge_incoming_pairs(corpus, incoming_dir, out_dir)
    for file, why in merged.rejected.items():
        logger.error("rejected %s: %s", file, why)
    logger.info("merged pairs %s: %d new pair(s) from %d file(s); dropped %s", merged.digest, merged.new_rows,
                len(merged.accepted), merged.dropped)
    return {"config": merged.config.model_dump(mode="json"), "digest": merged.digest,
            "split_digests": merged.split_digests, "accepted": merged.accepted, "rejected": merged.rejected,
            "new_rows": merged.new_rows, "dropped": merged.dropped, "relabelled": 0, "new_labels": []}


@task(name="merge-incoming")
def merge(corpus: CorpusConfig, incoming_dir: str, out_dir: str) -> dict:
    """Accept waiting files (bad ones go to ``rejected/`` with the reason), merge, and digest the splits."""
    logger = get_run_logger()
    merged = merge_incoming(corpus, incoming_dir, out_dir)
    for file, why in merged.rejected.items():
        logger.error("rejected %s: %s", file, why)
    corpus = load_corpus(merged.config)  # exactly what the pipeline's ingest will compute
    logger.info("merged corpus %s: %d new row(s) from %d file(s); dropped %s; relabelled %d; new labels %s",
                merged.digest, merged.new_rows, len(merged.accepted), merged.dropped, merged.relabelled,
                merged.new_labels or "none")
    return {"config": merged.config.model_dump(mode="json"), "digest": corpus.content_digest(),
            "split_digests": corpus.digests,
            "accepted": merged.accepted, "rejected": merged.rejected, "new_rows": merged.new_rows,
            "dropped": merged.dropped, "relabelled": merged.relabelled, "new_labels": merged.new_labels}


def _same_data(version: dict, content: str, splits: dict) -> bool:
    """A version's data is ours: same content digest (any row order), or, for versions registered
    before content digests were tagged, the same split digests."""
    tags = version["tags"]
    if "data_digest.content" in tags:
        return tags["data_digest.content"] == content
    return all(tags.get(f"data_digest.{k}") == splits[k] for k in SPLITS)


@task(name="decide")
def decide(model_name: str, content_digest: str, split_digests: dict, force: bool = False) -> dict:
    """Retrain when forced, when there is no champion, or when the data differs from the champion's.

    Data a challenger was already trained on (and lost the gate with) is not retrained either.
    Settings are not data: a changed preset with unchanged data needs ``force``.
    """
    ours = {k: split_digests[k] for k in SPLITS}
    versions = registry_versions(tracking_uri(), model_name)
    champion = next((v for v in versions if CHAMPION in v["aliases"]), None)
    same = [v for v in versions if _same_data(v, content_digest, ours)]
    if force:
        run, reason = True, "forced"
    elif champion is None:
        run, reason = True, f"no champion of {model_name!r} yet"
    elif champion in same:
        run, reason = False, (f"data unchanged since champion v{champion['version']} (content digest "
                              f"{content_digest}; changed settings alone need --force)")
    elif same:
        v = same[0]
        run, reason = False, (f"v{v['version']} ({', '.join(v['aliases']) or 'no alias'}) was already trained on "
                              f"this data (content digest {content_digest}) and did not beat champion "
                              f"v{champion['version']}")
    else:
        theirs = {k: champion["tags"].get(f"data_digest.{k}") for k in SPLITS}
        changed = ", ".join(f"{k} {theirs[k]} -> {ours[k]}" for k in SPLITS if theirs[k] != ours[k])
        run, reason = True, (f"data changed since champion v{champion['version']}: content "
                             f"{champion['tags'].get('data_digest.content', '?')} -> {content_digest}"
                             + (f"; splits {changed}" if changed else ""))
    get_run_logger().info("%s: %s", "retrain" if run else "skip", reason)
    create_markdown_artifact(key="retrain-decision", markdown=f"**{'retrain' if run else 'skip'}**: {reason}",
                             description=f"retrain decision for {model_name}")
    return {"retrain": run, "reason": reason}


@task(name="record-reason")
def record_reason(run_id: str, reason: str, corpus_digest: str) -> None:
    """Why the pipeline ran, and on which merged corpus, as tags of its MLflow run."""
    client = MlflowClient(tracking_uri())
    client.set_tag(run_id, "retrain_reason", reason)
    client.set_tag(run_id, "corpus_digest", corpus_digest)
