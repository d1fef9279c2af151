"""Registered translators that other pipelines use (back-translation): resolved once, verified, kept.

``fetch_translator("models:/NAME@alias", work_dir)`` resolves the alias to one version (so a run
uses one model throughout, whatever moves the alias meanwhile), downloads that version checked
against its registered digests (``tasks.integrity``), and keeps its bundle under
``<work_dir>/translators/NAME-vVERSION-DIGEST/``. The handle it returns names the version and its
``weights_digest``: stages that use the model take the handle as an input, so a new version (or a
changed one) is a new cache key. A registered model that is not a translator is refused, naming it
and what it is.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lowlm.inference.bundle import META
from tasks.integrity import resolve_version, verified_copy

TRANSLATORS = "translators"


class TranslatorRefError(ValueError):
    """A configured translator that cannot be used: missing, not a translator, or the wrong languages."""


def _bundle_folder(local: Path) -> Path:
    metas = sorted(local.glob(f"artifacts/*/{META}")) or sorted(local.rglob(META))
    if not metas:
        raise TranslatorRefError(f"{local}: the registered model holds no lowlm bundle ({META} not found)")
    return metas[0].parent


def fetch_translator(uri: str, work_dir: str, tracking_uri: str) -> dict:
    """A handle ``{ref, name, version, uri, digest, path, languages}`` for the registered translator ``uri``."""
    client = MlflowClient(tracking_uri)
    try:
        version = resolve_version(client, uri)
    except MlflowException as exc:
        raise TranslatorRefError(f"{uri}: no such registered model version in {tracking_uri} ({exc.message})") from None
    if version is None:
        raise TranslatorRefError(f"{uri}: not a registered model (models:/NAME@alias or models:/NAME/VERSION)")
    digest = version.tags.get("weights_digest") or version.tags.get("model_digest") or ""
    target = Path(work_dir) / TRANSLATORS / f"{version.name}-v{version.version}-{digest[:12] or 'undigested'}"
    if not (target / META).exists():
        with tempfile.TemporaryDirectory(dir=Path(work_dir)) as tmp:
            local, _ = verified_copy(f"models:/{version.name}/{version.version}", tracking_uri, dst=tmp)
            folder = _bundle_folder(local)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(folder, partial)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
    meta = json.loads((target / META).read_text())
    kind = meta.get("kind")
    if kind != "translator":
        raise TranslatorRefError(f"{uri} (version {version.version}) is a {kind or 'model of unknown kind'}, not a "
                                 f"translator: back-translation needs a seq2seq model trained by a translation preset")
    languages = meta.get("languages") or {}
    return {"ref": uri, "name": version.name, "version": str(version.version),
            "uri": f"models:/{version.name}/{version.version}", "digest": digest, "path": str(target),
            "languages": [languages.get("source") or version.tags.get("source_language"),
                          languages.get("target") or version.tags.get("target_language")]}
