"""One base for every trained bundle: a folder of plain files that records its kind.

A bundle is a model's weights (``weights.pt``, a state dict loaded with ``weights_only=True``), its
tokenizers (JSON) and ``bundle.json``: the bundle's ``kind``, the model config (with the model's own
``kind``) and whatever else rebuilding needs (sizes, label names). Nothing of ours is unpickled.
``load_bundle(folder)`` reads the recorded kind and hands the folder to the class registered for it:

>>> load_bundle("path/to/folder")                          # doctest: +SKIP
<lowlm.inference.classifier.TextClassifier object at ...>

A subclass declares ``kind``, ``tokenizer_files`` (file name -> attribute), ``serve_params`` (the
inference parameters the pyfunc accepts, with defaults), and writes ``meta()`` / reads
``from_parts(model_meta, tokenizers, weights)``; ``serve(texts, params)`` answers the pyfunc's columns.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from lowlm.text.tokenizer import Tokenizer

WEIGHTS, META = "weights.pt", "bundle.json"
FORMAT = 2  # bundle.json layout; folders without it were written before kinds were recorded

# bundle kind -> "module:Class": the one place a new kind of bundle is added
BUNDLE_KINDS = {
    "classifier": "lowlm.inference.classifier:TextClassifier",
    "translator": "lowlm.inference.translator:Translator",
}


class BundleError(ValueError):
    """A folder that is not a bundle this lowlm can load; the message says what to do."""


class Bundle:
    kind: ClassVar[str]
    tokenizer_files: ClassVar[dict[str, str]]  # file name in the folder -> attribute holding a Tokenizer
    serve_params: ClassVar[dict[str, Any]] = {}
    model: nn.Module

    # -- what a kind fills in --------------------------------------------------------------------
    def meta(self) -> dict:
        """JSON-able description that ``from_parts`` rebuilds the model from (config, sizes, labels)."""
        raise NotImplementedError

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict[str, Tokenizer], weights: dict) -> "Bundle":
        raise NotImplementedError

    def serve(self, texts: list[str], params: dict) -> dict[str, list]:
        """The pyfunc's output columns for raw ``texts``."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / WEIGHTS)
        for file, attr in self.tokenizer_files.items():
            getattr(self, attr).save(folder / file)
        (folder / META).write_text(json.dumps({"kind": self.kind, "format": FORMAT, **self.meta()}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Bundle":
        bundle = load_bundle(folder)
        if not isinstance(bundle, cls):
            raise BundleError(f"{folder}: a {bundle.kind!r} bundle, not a {cls.kind!r} one")
        return bundle

    def digest(self) -> str:
        """Content hash of the weights, tokenizers and description: equal digests mean the same model."""
        texts = [getattr(self, attr).to_json() for attr in self.tokenizer_files.values()]
        return content_digest(self.model, *texts, json.dumps(self.meta(), sort_keys=True))


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / META
    if not path.exists():
        if (folder / "model.json").exists():
            raise BundleError(f"{folder}: written by lowlm before bundles recorded their kind (model.json, no "
                              f"{META}); train it again (re-run its pipeline) to get a bundle this version loads")
        raise BundleError(f"{folder}: no {META}; expected a folder written by a lowlm bundle's save()")
    meta = json.loads(path.read_text())
    if meta.get("kind") not in BUNDLE_KINDS:
        raise BundleError(f"{path}: unknown bundle kind {meta.get('kind')!r}; known: {sorted(BUNDLE_KINDS)}")
    return meta


def bundle_class(kind: str) -> type[Bundle]:
    module, _, name = BUNDLE_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def load_bundle(folder: str | Path) -> Bundle:
    """The bundle in ``folder``, rebuilt by the class registered for the kind it records."""
    folder = Path(folder)
    meta = read_meta(folder)
    cls = bundle_class(meta["kind"])
    missing = [f for f in (WEIGHTS, *cls.tokenizer_files) if not (folder / f).exists()]
    if missing:
        raise BundleError(f"{folder}: missing {', '.join(missing)} for a {meta['kind']!r} bundle")
    tokenizers = {attr: Tokenizer.load(folder / file) for file, attr in cls.tokenizer_files.items()}
    weights = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    return cls.from_parts(meta, tokenizers, weights)


def content_digest(model: nn.Module, *texts: str) -> str:
    """Hash of a model's state dict plus any texts (tokenizer JSON, labels)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for text in texts:
        h.update(text.encode())
    return h.hexdigest()[:16]


def check_texts(texts) -> list[str]:
    """A list of strings, or a clear error naming the first input that is not one."""
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got one string; wrap it in a list")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"input {i}: expected a string, got {type(t).__name__} ({t!r:.40})")
    return texts

