"""Registered translators that other pipelines use (back-translation): resolved once, verified, kept.

``fetch_translator("models:/NAME@alias", work_dir)`` resolves the alias to one version and keeps its
verified bundle under ``<work_dir>/translators/`` (``tasks.registered``). The handle it returns names
the version and its ``weights_digest``: stages that use the model take the handle as an input, so a new
version (or a changed one) is a new cache key. A registered model that is not a translator is refused,
naming it and what it is.
"""

from __future__ import annotations

from tasks.registered import RegisteredRefError, fetch_bundle

TRANSLATORS = "translators"


class TranslatorRefError(RegisteredRefError):
    """A configured translator that cannot be used: missing, not a translator, or the wrong languages."""


def fetch_translator(uri: str, work_dir: str, tracking_uri: str) -> dict:
    """A handle ``{ref, name, version, uri, digest, path, languages}`` for the registered translator ``uri``."""
    try:
        got = fetch_bundle(uri, work_dir, tracking_uri, TRANSLATORS)
    except RegisteredRefError as exc:
        raise TranslatorRefError(str(exc)) from None
    kind = got.meta.get("kind")
    if kind != "translator":
        raise TranslatorRefError(f"{uri} (version {got.version}) is a {kind or 'model of unknown kind'}, not a "
                                 f"translator: back-translation needs a seq2seq model trained by a translation preset")
    languages = got.meta.get("languages") or {}
    return {"ref": uri, "name": got.name, "version": got.version, "uri": got.uri, "digest": got.digest,
            "path": str(got.path),
            "languages": [languages.get("source") or got.tags.get("source_language"),
                          languages.get("target") or got.tags.get("target_language")]}
