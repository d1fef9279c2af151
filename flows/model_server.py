"""REST serving of a (verified) lowlm model: MLflow's scoring app, with a front that checks requests first.

MLflow's scoring server parses ``{"inputs": [...]}`` against the signature's string column by
casting every item to a string (1 -> "1", null -> "None"), so the model never sees what was sent,
and it reads any body whole before any limit applies. The front here answers before MLflow does:

- a body over ``LOWLM_MAX_BODY_BYTES`` (default 16 MB) is refused with 413, read no further;
- in an ``inputs`` / ``instances`` list, every item must be a string (or a ``{"text": string}``
  record): anything else is a 400 naming its position, as ``model.predict`` in Python refuses it;
- everything else (``dataframe_split``, ``dataframe_records``, CSV) goes to MLflow's app, whose
  pyfunc checks the ``text`` column, the row and character limits, and each value.

    python -m flows.model_server PATH_OR_URI --port 5001       (``lowlm serve-model`` runs this)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

MAX_BODY_ENV, MAX_BODY = "LOWLM_MAX_BODY_BYTES", 16 << 20


def check_request(payload, columns: tuple[str, ...] = ("text",)) -> str | None:
    """Why a parsed JSON request cannot be answered, or None. ``columns``: the model's string inputs (a
    reader's ``context`` and ``question``: each item a record of both).

    >>> check_request({"inputs": ["ok", "fine"]}) is None
    True
    >>> check_request({"inputs": ["ok", None]})
    'inputs[1]: expected a string, got null'
    >>> check_request({"instances": [{"text": 2.5}]})
    'instances[0].text: expected a string, got a number (2.5)'
    >>> check_request({"inputs": [{"context": "c", "question": 3}]}, ("context", "question"))
    'inputs[0].question: expected a string, got a number (3)'
    """
    if not isinstance(payload, dict):
        return None
    if columns != ("text",):
        return _check_records(payload, columns)
    for key in ("inputs", "instances"):
        items = payload.get(key)
        if items is None:
            continue
        if isinstance(items, dict) and "text" in items:
            items, key = items["text"], f"{key}.text"
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list):
            return f"{key}: expected a list of strings, got {_kind(items)}"
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if isinstance(item, dict):
                item, where = item.get("text"), f"{where}.text"
            if not isinstance(item, str):
                return f"{where}: expected a string, got {_kind(item)}"
    return None


def _check_records(payload: dict, columns: tuple[str, ...]) -> str | None:
    for key in ("inputs", "instances"):
        items = payload.get(key)
        if items is None or isinstance(items, dict):  # a dict of columns: the pyfunc checks it
            continue
        if not isinstance(items, list):
            return f"{key}: expected a list of records with {', '.join(columns)}, got {_kind(items)}"
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{key}[{i}]: expected a record with {', '.join(columns)}, got {_kind(item)}"
            for column in columns:
                if not isinstance(item.get(column), str):
                    return f"{key}[{i}].{column}: expected a string, got {_kind(item.get(column))}"
    return None


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return f"{type(value).__name__.replace('dict', 'an object').replace('list', 'a list')}"


class RequestFront:
    """ASGI middleware: the checks above on POST /invocations, then the body replayed to MLflow's app."""

    def __init__(self, app, max_body: int, columns: tuple[str, ...] = ("text",)):
        self.app, self.max_body, self.columns = app, max_body, columns

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/invocations":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            return await _answer(send, 413, f"request body of {int(declared)} bytes is over the limit of "
                                            f"{self.max_body} ({MAX_BODY_ENV})")
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await _answer(send, 413, f"request body is over the limit of {self.max_body} bytes "
                                                f"({MAX_BODY_ENV})")
        if b"json" in headers.get(b"content-type", b""):
            try:
                why = check_request(json.loads(body), self.columns)
            except (ValueError, RecursionError):
                why = None  # MLflow answers malformed JSON itself
            if why:
                return await _answer(send, 400, why)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE" if status == 400 else "REQUEST_LIMIT_EXCEEDED",
                       "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def build_app(model_uri: str):
    import mlflow
    from mlflow.pyfunc import scoring_server

    max_body = int(os.environ.get(MAX_BODY_ENV) or MAX_BODY)
    model = mlflow.pyfunc.load_model(model_uri)
    columns = tuple(model.metadata.get_input_schema().input_names())
    return RequestFront(scoring_server.init(model), max_body, columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.model_server", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a local model folder (verified) or a model URI")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(build_app(args.model), host="127.0.0.1", port=args.port, workers=1, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
