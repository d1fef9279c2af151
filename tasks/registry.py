"""Reading the MLflow model registry: versions with their aliases, tags and key metrics.

The registry is written by ``tasks.register`` (the champion/challenger gate) and ``tasks.champion``
(promote, rollback); this module only reads it, for the retrain decision and ``lowlm models``.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from lowlm.evaluation.gate import CHALLENGER, CHAMPION  # noqa: F401 (the aliases, re-exported for tasks)


def registry_versions(uri: str, name: str | None = None) -> list[dict]:
    """Every version of model ``name`` (or of every model), newest first, as plain dicts:
    ``name, version, aliases, tags, run_id, created`` (ms since the epoch), ``metrics`` (``test_*`` tags)."""
    client = MlflowClient(uri)
    if name is not None:
        try:
            registered = [client.get_registered_model(name)]
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise  # an unreachable store is not "no model": the retrain decision depends on it
            return []
    else:
        registered = _all_registered_models(client)
    rows = []
    for model in registered:
        # version search results leave aliases out: the registered model holds alias -> version
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for v in model_versions(client, model.name):
            rows.append(_row(v, sorted(aliases.get(str(v.version), []))))
    return sorted(rows, key=lambda r: (r["name"], -int(r["version"])))


def model_versions(client: MlflowClient, name: str) -> list:
    """Every version of model ``name``, for any name. MLflow's filter strings have no escapes: a name
    with ``'`` is quoted with ``"``, and one with both quotes or a backslash is matched with LIKE (each
    quote, backslash, ``%`` and ``_`` a one-character wildcard), then compared exactly here."""
    if "\\" in name or ("'" in name and '"' in name):
        pattern = "".join("_" if c in "'\"%_\\" else c for c in name)
        found = client.search_model_versions(f"name LIKE '{pattern}'")
    elif "'" in name:
        found = client.search_model_versions(f'name = "{name}"')
    else:
        found = client.search_model_versions(f"name = '{name}'")
    return [v for v in found if v.name == name]


def _all_registered_models(client: MlflowClient) -> list:
    models, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            return models


def _row(v, aliases: list[str]) -> dict:
    tags = dict(v.tags or {})
    return {"name": v.name, "version": str(v.version), "aliases": aliases, "tags": tags,
            "run_id": v.run_id, "created": int(v.creation_timestamp or 0),
            "metrics": {k: float(x) for k, x in tags.items() if k.startswith("test_") and _is_number(x)}}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
