"""Property-based fuzzing of the pyfunc's input path (``model_texts`` and ``LowlmPyfunc.predict`` on the
trained sample's bundle, loaded as MLflow loads it but called directly, without MLflow's enforcement).

The contract: whatever comes in, the answer is one prediction row per input row, or an ``InputError``
(a ``ValueError``; an ``InputTypeError``, also a ``TypeError``, when an item is not a string) whose
message names the first bad input, the columns or the limit. Never another exception, never a hang
(hypothesis ``deadline``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.pyfunc import PythonModelContext

from lowlm.serving.pyfunc import InputError, InputTypeError, LowlmPyfunc, model_texts

# 60 examples, the same every run; FUZZ_N=1000 for a longer, random search
N = int(os.environ.get("FUZZ_N", "0"))
SETTINGS = settings(max_examples=N or 60, derandomize=not N, deadline=timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

# any unicode text, control characters included, and now and then a lone surrogate (which JSON can carry)
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=[])
# (st.text drops surrogates from a mixed alphabet, so the characters are joined by hand)
texts = st.lists(st.one_of(st.characters(codec=None), st.characters(max_codepoint=31), surrogate),
                 max_size=60).map("".join)
huge = st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=8), st.integers(1_000, 6_000))
strings = st.one_of(texts, huge, st.sampled_from(["", " ", "\x00", "\n\t\r", "\u200b", "🙂" * 50, "ok"]))
valid = st.text(st.characters(codec="utf-8"), max_size=60)  # no surrogates
scalars = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(max_size=8),
                    st.just(np.nan), st.just(pd.NA), st.just(pd.NaT), st.just(np.int64(3)))


def _items(strings):
    return st.one_of(strings, scalars, st.lists(strings, max_size=3), st.dictionaries(texts, strings, max_size=2),
                     st.lists(st.lists(strings, max_size=2), max_size=2))


items = _items(strings)
# pandas 3 keeps strings in Arrow, which cannot hold a lone surrogate: inferred-dtype frames get valid text
valid_items = _items(st.one_of(valid, huge, st.sampled_from(["", "\x00", "ok"])))
columns = st.lists(st.one_of(st.sampled_from(["text", "id", "Text", "text ", 0]), st.text(max_size=6),
                             st.integers(-3, 3)), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def pyfunc(trained_sample, tmp_path_factory) -> LowlmPyfunc:
    folder = trained_sample["classifier"].save(tmp_path_factory.mktemp("fuzz") / "clf")
    model = LowlmPyfunc()
    with pytest.MonkeyPatch.context() as env:
        env.delenv("LOWLM_MAX_ROWS", raising=False)
        env.delenv("LOWLM_MAX_CHARS", raising=False)
        model.load_context(PythonModelContext(artifacts={"bundle": str(folder)}, model_config={}))
    assert (model.max_rows, model.max_chars) == (10_000, 20_000)  # the defaults
    return model


def _answers_or_refuses(pyfunc, model_input, rows: int) -> None:
    try:
        out = pyfunc.predict(None, model_input)
    except InputError as exc:
        assert str(exc)  # a message, always
        return
    assert len(out) == rows
    assert list(out.columns) == ["label", "score", "probabilities"]
    assert out["label"].isin(pyfunc.bundle.labels).all()


def _broken(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _first_problem(batch: list, max_chars: int = 20_000) -> str | None:
    """The message prefix ``model_texts`` must give for ``batch`` (a list), None when it must accept it."""
    for i, t in enumerate(batch):
        if not isinstance(t, str):
            return f"input {i}: expected a string, got "
        if _broken(t):
            return f"input {i}: not valid Unicode text: a lone surrogate"
    for i, t in enumerate(batch):
        if len(t) > max_chars:
            return f"input {i}: {len(t)} characters; this model takes at most {max_chars} per text (LOWLM_MAX_CHARS)"
    return None


@SETTINGS
@given(st.lists(strings, max_size=40))
def test_any_list_of_strings_gets_one_row_each(pyfunc, batch):
    problem = _first_problem(batch)
    try:
        out = pyfunc.predict(None, batch)
    except InputError as exc:
        assert problem and str(exc).startswith(problem), (problem, str(exc))
        return
    assert problem is None and len(out) == len(batch)


@SETTINGS
@given(st.lists(valid, max_size=40))
def test_valid_text_is_always_answered(pyfunc, batch):
    out = pyfunc.predict(None, batch)
    assert len(out) == len(batch) and out["label"].isin(pyfunc.bundle.labels).all()


@SETTINGS
@given(st.lists(items, max_size=12))
def test_mixed_items_are_answered_or_refused_naming_the_first_bad_one(pyfunc, batch):
    problem = _first_problem(batch)
    try:
        texts_ = model_texts(batch)
    except InputTypeError as exc:
        assert problem and "expected a string" in problem and str(exc).startswith(problem)
    except InputError as exc:
        assert problem and str(exc).startswith(problem)
    else:
        assert problem is None and texts_ == batch
    _answers_or_refuses(pyfunc, batch, len(batch))


def _frames(names):
    def rows(cells):
        return st.lists(st.lists(cells, min_size=len(names), max_size=len(names)), max_size=8)

    return st.one_of(rows(valid_items).map(lambda r: pd.DataFrame(r or None, columns=names)),
                     rows(items).map(lambda r: pd.DataFrame(r or None, columns=names, dtype=object)))


@SETTINGS
@given(columns.flatmap(lambda names: st.tuples(st.just(names), _frames(names))))
def test_frames_with_any_columns_are_read_by_text_or_refused_naming_them(pyfunc, spec):
    names, frame = spec
    if names.count("text") != 1:
        with pytest.raises(InputError, match=r"'text' column; got columns \["):
            model_texts(frame)
    else:
        column = frame["text"].tolist()
        problem = _first_problem(column)
        try:
            assert model_texts(frame) == column and problem is None
        except InputError as exc:
            assert problem and str(exc).startswith(problem), (problem, str(exc))
    _answers_or_refuses(pyfunc, frame, len(frame))


@SETTINGS
@given(st.one_of(scalars, strings, st.dictionaries(texts, items, max_size=3), st.sets(st.integers(), max_size=3),
                 st.lists(items, max_size=5).map(lambda x: pd.Series(x, dtype=object)),
                 st.lists(items, max_size=5).map(tuple),
                 st.lists(st.lists(texts, min_size=2, max_size=2), min_size=1, max_size=3).map(np.array),
                 st.lists(texts, max_size=5).map(np.array), st.lists(texts, max_size=5).map(iter)))
def test_anything_else_is_answered_or_refused(pyfunc, model_input):
    rows = len(model_input) if isinstance(model_input, (pd.Series, tuple, np.ndarray)) else 0
    _answers_or_refuses(pyfunc, model_input, rows)


@SETTINGS
@given(st.lists(st.text(max_size=12), max_size=8), st.integers(1, 6), st.integers(1, 10))
def test_limits_refuse_exactly_what_is_over_them(batch, max_rows, max_chars):
    over_rows = len(batch) > max_rows
    long = [i for i, t in enumerate(batch) if len(t) > max_chars]
    try:
        assert model_texts(batch, max_rows, max_chars) == batch
    except InputError as exc:
        if over_rows:
            assert f"{len(batch)} rows in one request; this model answers at most {max_rows}" in str(exc)
        else:
            assert long and str(exc).startswith(f"input {long[0]}: {len(batch[long[0]])} characters; "
                                                f"this model takes at most {max_chars}")
    else:
        assert not over_rows and not long
