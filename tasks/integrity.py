"""What a registered version holds, pinned by digests: loading it verifies them first.

A registered model is logged "from code": loading it runs the Python stored in the artifact store
(``pyfunc.py`` and the ``lowlm`` package beside it). Whoever can write to the artifact store could
change that code, or the weights, for every consumer. So at registration the version is tagged
with digests of what was logged:

    artifact_digest   every file of the logged model (code, weights, tokenizers, MLmodel), by path
    code_digest       the Python files alone
    weights_digest    the bundle's files (weights, tokenizers, bundle.json)

``load_verified(uri)`` (what ``lowlm predict``, ``lowlm serve-model`` and the tasks use) downloads
the version, recomputes the digests and refuses a mismatch before any of its code runs, then
loads that same verified copy. A plain ``mlflow.pyfunc.load_model`` does none of this: it trusts
the artifact store.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

DIGEST_TAGS = ("artifact_digest", "code_digest", "weights_digest")
# written by MLflow into a downloaded copy of a registry version (its name and number): not logged content
NOT_LOGGED = {"registered_model_meta"}
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w\-]+))/?$")


class IntegrityError(RuntimeError):
    """A registered version whose stored files do not match the digests recorded when it was registered."""


def folder_digests(folder: str | Path) -> dict[str, str]:
    """``artifact_digest``, ``code_digest`` and ``weights_digest`` of a logged model's folder."""
    folder = Path(folder)
    hashes = {tag: hashlib.sha256() for tag in DIGEST_TAGS}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.relative_to(folder).as_posix() not in NOT_LOGGED):
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        record = rel.encode() + b"\0" + hashlib.sha256(data).digest()
        hashes["artifact_digest"].update(record)
        if path.suffix == ".py":
            hashes["code_digest"].update(record)
        if rel.startswith("artifacts/"):
            hashes["weights_digest"].update(record)
    return {tag: h.hexdigest()[:32] for tag, h in hashes.items()}


def resolve_version(client: MlflowClient, model_uri: str):
    """The registry version a ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI names, or None for
    other URIs (``runs:/...``, a path), which carry no registry tags."""
    match = _MODELS_URI.match(model_uri)
    if not match:
        return None
    if match["alias"]:
        return client.get_model_version_by_alias(match["name"], match["alias"])
    return client.get_model_version(match["name"], match["version"])


def verified_copy(model_uri: str, tracking_uri: str | None = None, dst: str | Path | None = None) -> tuple[Path, str]:
    """Download the model ``model_uri`` names and check it against its version's digests; returns
    (the local copy, a note on what was verified). A mismatch raises ``IntegrityError``."""
    client = MlflowClient(tracking_uri)
    version = resolve_version(client, model_uri)
    target = Path(dst) if dst else Path(tempfile.mkdtemp(prefix="lowlm-model-"))
    # a models:/ URI is resolved through MLflow's global registry URI, whatever tracking_uri says; this
    # client's own answer (the version's artifact location) is not
    uri = client.get_model_version_download_uri(version.name, version.version) if version is not None else model_uri
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target),
                                                     tracking_uri=tracking_uri))
    if version is None:
        return local, f"{model_uri}: not a registry version; no digests to verify"
    recorded = {tag: version.tags.get(tag) for tag in DIGEST_TAGS}
    if not any(recorded.values()):
        return local, (f"{version.name} v{version.version} was registered before digests were recorded; "
                       f"not verified")
    found = folder_digests(local)
    wrong = [tag for tag, value in recorded.items() if value and found[tag] != value]
    if wrong:
        raise IntegrityError(
            f"{version.name} v{version.version}: the stored model does not match what was registered "
            f"({', '.join(f'{t} {found[t]} != {recorded[t]}' for t in wrong)}); its files were changed in the "
            f"artifact store after registration. Refusing to load it: re-register it from its run, and check who "
            f"can write to the artifact store")
    return local, f"{version.name} v{version.version}: digests verified ({recorded['artifact_digest']})"


def load_verified(model_uri: str, tracking_uri: str | None = None):
    """``mlflow.pyfunc.load_model`` of the verified local copy of ``model_uri`` (see ``verified_copy``)."""
    local, _ = verified_copy(model_uri, tracking_uri)
    return mlflow.pyfunc.load_model(str(local))


def tag_digests(client: MlflowClient, name: str, version: str, model_uri: str) -> dict[str, str]:
    """Compute the digests of a just-logged model (``model_uri``) and tag version ``version`` with them."""
    with tempfile.TemporaryDirectory(prefix="lowlm-digest-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp,
                                                    tracking_uri=client._tracking_client.tracking_uri)
        digests = folder_digests(local)
    for tag, value in digests.items():
        client.set_model_version_tag(name, version, tag, value)
    return digests


__all__ = ["IntegrityError", "MlflowException", "folder_digests", "load_verified", "resolve_version",
           "tag_digests", "verified_copy"]
