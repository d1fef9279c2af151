"""Moving a model's ``champion`` alias: by the gate (``tasks.register.gate``), by hand (``promote``) and
back (``rollback``), each under the model's lock (``tasks.champion_lock``) and each recorded.

A version that takes ``champion`` from another makes that one ``challenger``: the runner-up, and what a
rollback brings back. The registered model's tag ``lowlm.champion_history`` is the stack of versions
that held the alias, oldest first, the current champion last (a JSON list, the last 100). ``rollback``
pops it: the current champion becomes challenger and the one before it champion again; rolling back
again goes further back. A version that was deleted is skipped. If the alias was moved outside lowlm,
the stack is reconciled first (the actual champion is pushed on top).

>>> _pushed(["1", "2"], "2", "3"), _pushed(["1"], "4", "3"), _pushed([], None, "1")
(['1', '2', '3'], ['1', '4', '3'], ['1'])
"""

from __future__ import annotations

import getpass
import json
import os
import time
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from lowlm.evaluation.gate import CHALLENGER, CHAMPION
from tasks.champion_lock import ChampionLock, champion_lock
from tasks.registry import model_versions

HISTORY_TAG = "lowlm.champion_history"
HISTORY_LIMIT = 100
SETTLE_S = 1.0  # compare-and-set (no lock): how long another writer has to show up before we re-read


class UnknownModel(LookupError):
    """No such registered model, or no such version of it."""


class NoRollback(RuntimeError):
    """No champion, or no earlier champion to bring back."""


class ConcurrentChange(RuntimeError):
    """Compare-and-set: another process moved the alias at the same time."""


def registry_uri(client: MlflowClient) -> str:
    """Where ``client`` reads and writes model versions (``MLFLOW_REGISTRY_URI``, else its tracking URI)."""
    return getattr(client, "_registry_uri", None) or client.tracking_uri


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version of model ``name``, read now (``UnknownModel`` when there is no such model)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        raise UnknownModel(f"no registered model {name!r} in {registry_uri(client)}") from None
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def history(client: MlflowClient, name: str) -> list[str]:
    """The versions that held ``champion``, oldest first (as recorded; see the module's docstring)."""
    text = client.get_registered_model(name).tags.get(HISTORY_TAG)
    try:
        versions = json.loads(text) if text else []
    except ValueError:
        versions = []  # edited by hand into something else: start again from the champion
    return [str(v) for v in versions] if isinstance(versions, list) else []


def _pushed(stack: list[str], current: str | None, version: str) -> list[str]:
    """``stack`` reconciled with the ``current`` champion, then ``version`` on top (bounded)."""
    stack = list(stack)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    if not stack or stack[-1] != version:
        stack.append(version)
    return stack[-HISTORY_LIMIT:]


def _upserted(write, *args, attempts: int = 6) -> None:
    """A model-level tag or alias write that two processes may make at once: MLflow's SQL store reads
    then inserts, so the second first-ever write of a key fails its unique constraint; written again, it
    finds the row and updates it."""
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            write(*args)
            return
        except MlflowException as exc:
            text = str(exc)
            if attempt == attempts - 1 or not any(s in text for s in ("UNIQUE constraint", "IntegrityError",
                                                                      "duplicate key", "Duplicate entry")):
                raise
            time.sleep(0.05 * (attempt + 1))


def move(client: MlflowClient, name: str, stack: list[str], champion: str, challenger: str | None,
         lock: ChampionLock | None) -> None:
    """Write the history, then ``challenger``, then ``champion`` (last: a failure before it leaves the old
    champion in place). Without a challenger, ``champion`` does not keep the challenger alias too."""
    _check(lock)
    _upserted(client.set_registered_model_tag, name, HISTORY_TAG, json.dumps(stack[-HISTORY_LIMIT:]))
    if challenger is not None and challenger != champion:
        _check(lock)
        _upserted(client.set_registered_model_alias, name, CHALLENGER, challenger)
    elif aliases(client, name).get(CHALLENGER) == champion:
        client.delete_registered_model_alias(name, CHALLENGER)
    _check(lock)
    _upserted(client.set_registered_model_alias, name, CHAMPION, champion)


def crown(client: MlflowClient, name: str, version: str, previous: str | None, lock: ChampionLock | None) -> None:
    """``version`` becomes champion; ``previous`` (the champion it replaces, if any) becomes challenger."""
    move(client, name, _pushed(history(client, name), previous, version), version, previous, lock)


def promote(uri: str, name: str, version: str, reason: str | None = None) -> dict:
    """Make ``version`` the champion of ``name`` by hand; the old champion becomes challenger.
    Recorded on the version (``promoted_by``, ``promote_reason``, ``promoted_at``, ``promoted_from``)
    and in the history. Returns ``{name, version, previous, changed, reason}``."""
    client = MlflowClient(uri)
    version = _known_version(client, name, version)
    with champion_lock(registry_uri(client), name) as lock:
        current = aliases(client, name).get(CHAMPION)
        if current == version:
            return {"name": name, "version": version, "previous": current, "changed": False,
                    "reason": f"v{version} is already the champion of {name!r}; nothing changed"}
        who = _user()
        reason = reason or f"manual promote by {who}"
        _tag(client, name, version, {"promoted_by": who, "promote_reason": reason, "promoted_at": _now(),
                                     "promoted_from": current or "-"}, lock)
        crown(client, name, version, current, lock)
        _confirm(client, name, version, lock)
    return {"name": name, "version": version, "previous": current, "changed": True, "reason": reason}


def rollback(uri: str, name: str, reason: str | None = None) -> dict:
    """Bring back the champion before the current one; the current one becomes challenger. Recorded on
    the restored version (``rollback_by``, ``rollback_reason``, ``rollback_at``, ``rollback_from``) and
    in the history. ``NoRollback`` when there is no champion or none before it."""
    client = MlflowClient(uri)
    aliases(client, name)  # UnknownModel before taking the lock
    with champion_lock(registry_uri(client), name) as lock:
        current = aliases(client, name).get(CHAMPION)
        if current is None:
            raise NoRollback(f"model {name!r} has no champion to roll back")
        stack = _pushed(history(client, name), current, current)[:-1]
        existing = {str(v.version) for v in model_versions(client, name)}
        while stack and (stack[-1] == current or stack[-1] not in existing):
            stack.pop()
        if not stack:
            raise NoRollback(f"model {name!r}: no champion before v{current} is recorded (registered-model tag "
                             f"{HISTORY_TAG}); make another version champion with `lowlm models promote`")
        target, who = stack[-1], _user()
        reason = reason or f"manual rollback by {who}"
        _tag(client, name, target, {"rollback_by": who, "rollback_reason": reason, "rollback_at": _now(),
                                    "rollback_from": current}, lock)
        move(client, name, stack, target, current, lock)
        _confirm(client, name, target, lock)
    return {"name": name, "version": target, "previous": current, "changed": True, "reason": reason}


def _known_version(client: MlflowClient, name: str, version: str) -> str:
    aliases(client, name)  # UnknownModel for an unknown name
    text = str(version).strip().removeprefix("v")
    known = sorted((str(v.version) for v in model_versions(client, name)), key=int)
    if text not in known:
        raise UnknownModel(f"model {name!r} has no version {version!r} (versions: {', '.join(known) or 'none'})")
    return text


def _tag(client: MlflowClient, name: str, version: str, tags: dict, lock: ChampionLock | None) -> None:
    for key, value in tags.items():
        _check(lock)
        client.set_model_version_tag(name, version, key, value)


def _confirm(client: MlflowClient, name: str, version: str, lock: ChampionLock | None) -> None:
    """Compare-and-set (no lock): after a settling pause, the alias must still be where we put it."""
    if lock is not None:
        return
    time.sleep(SETTLE_S)
    now = aliases(client, name).get(CHAMPION)
    if now != version:
        raise ConcurrentChange(f"model {name!r}: another process moved the champion to v{now} while this one set "
                               f"v{version}; see `lowlm models {name}` and try again")


def _check(lock: ChampionLock | None) -> None:
    if lock is not None:
        lock.check()


def _user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
