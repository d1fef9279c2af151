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
``from_parts`` raises ``BundleError`` when the parts disagree (label names vs the head's size, a
tokenizer vs its embedding's rows), so a bad folder fails at load, never later at inference;
``load_bundle`` adds the folder to the message.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
import reprlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from lowlm.files import atomic_folder
from lowlm.text.tokenizer import Tokenizer

WEIGHTS, META = "weights.pt", "bundle.json"
FORMAT = 2  # bundle.json layout; folders without it were written before kinds were recorded

# bundle kind -> "module:Class": the one place a new kind of bundle is added
BUNDLE_KINDS = {
    "classifier": "lowlm.inference.classifier:TextClassifier",
    "translator": "lowlm.inference.translator:Translator",
    "language_model": "lowlm.inference.language_model:LanguageModelBundle",
    "reader": "lowlm.inference.reader:QAReader",
}


class BundleError(ValueError):
    """A folder that is not a bundle this lowlm can load; the message says what to do."""


class Bundle:
    kind: ClassVar[str]
    tokenizer_files: ClassVar[dict[str, str]]  # file name in the folder -> attribute holding a Tokenizer
    serve_params: ClassVar[dict[str, Any]] = {}
    input_columns: ClassVar[tuple[str, ...]] = ("text",)  # the pyfunc's string columns; more than one: serve
    # takes a dict of column -> strings instead of a list of texts
    model: nn.Module

    # -- what a kind fills in --------------------------------------------------------------------
    def meta(self) -> dict:
        """JSON-able description that ``from_parts`` rebuilds the model from (config, sizes, labels)."""
        raise NotImplementedError

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict[str, Tokenizer], weights: dict) -> "Bundle":
        raise NotImplementedError

    def serve(self, texts: list[str], params: dict) -> dict[str, list]:
        """The pyfunc's output columns for raw ``texts`` (or, with several ``input_columns``, for a dict of
        column -> strings)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def save(self, folder: str | Path, optimization: dict | None = None) -> Path:
        """Write the bundle to ``folder``, all or nothing: a failure (a full disk: ``DiskFull``) leaves no
        half-written folder. ``optimization`` (``lowlm.optimize``): recorded in bundle.json; with
        ``{"weights": "int8"}`` the weight matrices are stored as int8 rows, and with ``{"runtime":
        "dynamic_int8"}`` loading runs the model's linear and recurrent layers in int8."""
        if getattr(self, "optimization", None) and self.optimization.get("runtime", "float") != "float":
            raise BundleError("this bundle runs a quantized model, which does not save; optimize the float "
                              "model it came from again (lowlm.optimize)")
        folder = Path(folder)
        state = self.model.state_dict()
        extra = {}
        if optimization:
            state = _pack(state, optimization, self.model)
            extra = {"optimization": optimization}
        with atomic_folder(folder) as partial:
            torch.save(state, partial / WEIGHTS)
            for file, attr in self.tokenizer_files.items():
                getattr(self, attr).save(partial / file)
            (partial / META).write_text(json.dumps({"kind": self.kind, "format": FORMAT, **self.meta(), **extra},
                                                   indent=1))
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
    optimization = meta.pop("optimization", None)
    if optimization:
        weights = _unpack(weights, optimization)
    try:
        bundle = cls.from_parts(meta, tokenizers, weights)
    except BundleError as exc:
        raise BundleError(f"{folder}: {exc}") from None
    if optimization:
        bundle.optimization = optimization
        if optimization.get("runtime", "float") == "dynamic_int8":
            from lowlm.optimize.quantize import quantize_dynamic

            bundle.model = quantize_dynamic(bundle.model)
    return bundle


def _pack(state: dict, optimization: dict, model: nn.Module) -> dict:
    weights = optimization.get("weights", "float32")
    if weights == "int8":
        from lowlm.optimize.quantize import pack_int8

        return pack_int8(state)
    if weights == "pq":
        from lowlm.optimize.compress import pack_pq

        if not hasattr(model, "_pq"):
            raise BundleError("optimization.weights pq: the model was not compressed (lowlm.optimize.compress)")
        return pack_pq(state, model._pq)
    if weights != "float32":
        raise BundleError(f"optimization.weights {weights!r}: expected float32, int8 or pq")
    return state


def _unpack(weights: dict, optimization: dict) -> dict:
    kind = optimization.get("weights", "float32")
    if kind == "int8":
        from lowlm.optimize.quantize import unpack_int8

        return unpack_int8(weights)
    if kind == "pq":
        from lowlm.optimize.compress import unpack_pq

        return unpack_pq(weights)
    return weights


def load_weights(model: nn.Module, weights: dict) -> nn.Module:
    """``model`` with ``weights`` loaded, or a ``BundleError`` when they do not fit the model that
    bundle.json describes (a size or a name differs)."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise BundleError(f"{WEIGHTS} does not fit the model {META} describes: {exc}") from None
    return model


def check_size(what: str, count: int, rows: int, where: str) -> None:
    """A ``BundleError`` unless ``count`` (labels, tokens) equals ``rows`` (the model's side of it).

    >>> check_size("labels in bundle.json", 5, 4, "outputs in the model's head")
    Traceback (most recent call last):
    ...
    lowlm.inference.bundle.BundleError: 5 labels in bundle.json but 4 outputs in the model's head
    """
    if count != rows:
        raise BundleError(f"{count} {what} but {rows} {where}")


def content_digest(model: nn.Module, *texts: str) -> str:
    """Hash of a model's state dict plus any texts (tokenizer JSON, labels)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for text in texts:
        h.update(text.encode())
    return h.hexdigest()[:16]


_REPR = reprlib.Repr()  # bounded: a huge nested item is shown by its first few parts
_REPR.maxstring = _REPR.maxother = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not text the tokenizers can read


def check_texts(texts) -> list[str]:
    """A list of strings, or an error naming the first input that is not one: a ``TypeError`` for a
    non-string, a ``ValueError`` for a string that is not valid Unicode (a lone surrogate).

    >>> check_texts(["ok", float("nan")])
    Traceback (most recent call last):
    ...
    TypeError: input 1: expected a string, got NaN (a missing value)
    >>> check_texts(["ok", "caf" + chr(0xDCE9)])
    Traceback (most recent call last):
    ...
    ValueError: input 1: not valid Unicode text: a lone surrogate (U+DCE9) at character 3
    """
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got one string; wrap it in a list")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            if t is None or (isinstance(t, float) and math.isnan(t)):
                shown = f"{'None' if t is None else 'NaN'} (a missing value)"
            else:
                shown = f"{type(t).__name__} ({_REPR.repr(t)})"
            raise TypeError(f"input {i}: expected a string, got {shown}")
        bad = _SURROGATE.search(t)
        if bad:
            raise ValueError(f"input {i}: not valid Unicode text: a lone surrogate (U+{ord(bad.group()):04X}) "
                             f"at character {bad.start()}")
    return texts

