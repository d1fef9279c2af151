"""Clean a work folder: drop what no registered version and no recent cache entry needs.

A work folder (``<work_dir>/<stage>/<key>/...`` outputs, ``<work_dir>/results/`` cache records) grows
with every new config and every new piece of data. ``collect`` keeps

- every cache record younger than ``keep_days``, and every record whose result names the digest of
  a registered model version (its ``model_digest`` tag) in the given MLflow store;
- every output some kept record names, and the stage folders holding them;
- checkpoints of interrupted trainings younger than ``keep_days`` (``lowlm run --resume`` needs them);
- the merged corpora of retraining (``retrain/``), which the registry's data digests point at;

and removes the rest: older records, the outputs only they named, and stage folders no record names.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tasks._cache import RESULTS, _paths_in

KEEP_ALWAYS = {RESULTS, "retrain"}


@dataclass
class Collected:
    removed: list[str] = field(default_factory=list)  # paths removed (or that would be, in a dry run)
    kept_records: int = 0
    removed_records: int = 0
    freed_bytes: int = 0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def registered_digests(tracking_uri: str) -> set[str]:
    """The ``model_digest`` tags of every registered version in the store."""
    from mlflow import MlflowClient

    from tasks.registry import model_versions

    client = MlflowClient(tracking_uri)
    digests = set()
    for model in client.search_registered_models(max_results=1000):
        for version in model_versions(client, model.name):
            if version.tags.get("model_digest"):
                digests.add(version.tags["model_digest"])
    return digests


def collect(work_dir: str | Path, keep_digests: set[str], keep_days: float = 14.0, dry_run: bool = False
            ) -> Collected:
    """Remove from ``work_dir`` what neither a recent cache record nor a registered version needs."""
    root = Path(work_dir).expanduser().resolve()
    out = Collected()
    if not root.is_dir():
        return out
    cutoff = time.time() - keep_days * 86400
    needed: set[Path] = set()
    records = sorted((root / RESULTS).glob("*")) if (root / RESULTS).is_dir() else []
    for record in records:
        if not record.is_file():
            continue
        try:
            result = json.loads(json.loads(record.read_text())["result"])
        except (OSError, ValueError, KeyError, TypeError):
            result = None
        digests = set(_strings(result))
        if record.stat().st_mtime >= cutoff or digests & keep_digests:
            out.kept_records += 1
            needed.update(Path(p).resolve() for p in _paths_in(result) if Path(p).is_relative_to(root))
            continue
        out.removed_records += 1
        out.freed_bytes += _size(record)
        out.removed.append(str(record))
        if not dry_run:
            record.unlink(missing_ok=True)
    for stage in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in KEEP_ALWAYS):
        for folder in sorted(p for p in stage.iterdir() if p.is_dir()):
            if any(n == folder or n.is_relative_to(folder) for n in needed):
                continue
            if _fresh_checkpoint(folder, cutoff):
                continue
            out.freed_bytes += _size(folder)
            out.removed.append(str(folder))
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
    return out


def _fresh_checkpoint(folder: Path, cutoff: float) -> bool:
    return any(p.stat().st_mtime >= cutoff for p in folder.glob("checkpoint.pt"))


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


__all__ = ["Collected", "collect", "registered_digests"]
