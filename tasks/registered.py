"""Registered models that other stages use (back-translation's translators, the champion an attack
targets): resolved once, verified, kept.

``fetch_bundle("models:/NAME@alias", work_dir, ...)`` resolves the alias to one version (so a run uses
one model throughout, whatever moves the alias meanwhile), downloads that version checked against
its registered digests (``tasks.integrity``), and keeps its bundle under
``<work_dir>/<folder>/NAME-vVERSION-DIGEST/``. Stages that use the model take the handle built from
it as an input, so a new version (or a changed one) is a new cache key.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lowlm.inference.bundle import META
from tasks.integrity import resolve_version, verified_copy


class RegisteredRefError(ValueError):
    """A configured registered model that cannot be used: missing, or not the kind of model needed."""


@dataclass
class Fetched:
    name: str
    version: str
    digest: str  # the version's weights digest (or model digest)
    path: Path  # the bundle folder
    meta: dict  # its bundle.json
    tags: dict

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _bundle_folder(local: Path) -> Path:
    metas = sorted(local.glob(f"artifacts/*/{META}")) or sorted(local.rglob(META))
    if not metas:
        raise RegisteredRefError(f"{local}: the registered model holds no lowlm bundle ({META} not found)")
    return metas[0].parent


def fetch_bundle(uri: str, work_dir: str, tracking_uri: str, folder: str) -> Fetched:
    """The bundle of registered model version ``uri``, verified and kept under ``work_dir/folder``."""
    client = MlflowClient(tracking_uri)
    try:
        version = resolve_version(client, uri)
    except MlflowException as exc:
        raise RegisteredRefError(f"{uri}: no such registered model version in {tracking_uri} ({exc.message})") from None
    if version is None:
        raise RegisteredRefError(f"{uri}: not a registered model (models:/NAME@alias or models:/NAME/VERSION)")
    digest = version.tags.get("weights_digest") or version.tags.get("model_digest") or ""
    target = Path(work_dir) / folder / f"{version.name}-v{version.version}-{digest[:12] or 'undigested'}"
    if not (target / META).exists():
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=Path(work_dir)) as tmp:
            local, _ = verified_copy(f"models:/{version.name}/{version.version}", tracking_uri, dst=tmp)
            bundle = _bundle_folder(local)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(bundle, partial)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
    return Fetched(version.name, str(version.version), digest, target, json.loads((target / META).read_text()),
                   dict(version.tags))


def fetch_classifier(uri: str, work_dir: str, tracking_uri: str) -> dict:
    """A handle ``{name, version, uri, digest, model_dir}`` for the registered classifier version ``uri``,
    plus under ``tags`` what the flow needs to know about it; a model that is not a classifier (the name
    reused by another pipeline) is refused, naming what it is."""
    got = fetch_bundle(uri, work_dir, tracking_uri, "attacked")
    if got.meta.get("kind") != "classifier":
        raise RegisteredRefError(f"{uri} (version {got.version}) is a {got.meta.get('kind') or 'model of unknown kind'}, "
                                 f"not a classifier")
    return {"name": got.name, "version": got.version, "uri": got.uri, "digest": got.digest,
            "model_dir": str(got.path), "tags": got.tags}


def fetch_champion(name: str, work_dir: str, tracking_uri: str) -> dict | None:
    """``fetch_classifier`` of the champion of ``name`` (resolved to its version now), or None when there is none."""
    try:
        MlflowClient(tracking_uri).get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    return fetch_classifier(f"models:/{name}@champion", work_dir, tracking_uri)


def fetch_language_model(uri: str, work_dir: str, tracking_uri: str, model=None) -> dict:
    """A handle ``{name, version, uri, digest, model_dir, tokenizer}`` for the registered language model
    ``uri``. ``model`` (a classifier or seq2seq config): checked now that the LM's encoder fits it, so a mismatch
    fails before any stage runs, naming both."""
    got = fetch_bundle(uri, work_dir, tracking_uri, "pretrained")
    if got.meta.get("kind") != "language_model":
        raise RegisteredRefError(f"{uri} (version {got.version}) is a {got.meta.get('kind') or 'model of unknown kind'}"
                                 f", not a language model to start an encoder from")
    if model is not None:
        from lowlm.inference.language_model import LanguageModelBundle
        from lowlm.models.kinds import build_model
        from lowlm.training.pretrained import PretrainedMismatch, load_encoder

        lm = LanguageModelBundle.load(got.path)
        vocab = lm.tokenizer.vocab_size
        net = (build_model(model, src_vocab=vocab, tgt_vocab=vocab) if model.kind == "seq2seq" else
               build_model(model, vocab_size=vocab, num_labels=2, words=lm.tokenizer.tokens()))
        try:
            load_encoder(net, lm, lm.tokenizer)
        except PretrainedMismatch as exc:
            raise PretrainedMismatch(f"pretrained.uri {uri} (version {got.version}): {exc}") from None
    return {"name": got.name, "version": got.version, "uri": got.uri, "digest": got.digest,
            "model_dir": str(got.path), "tokenizer": str(got.path / "tokenizer.json")}
