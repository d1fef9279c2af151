"""The per-model lock that makes every move of a model's ``champion`` alias one step at a time.

Reading the champion, comparing with it and moving the aliases (the gate in ``tasks.register``,
``lowlm models promote`` and ``rollback``) must not interleave for one model name, on any host that
shares the store. A lock file would only hold on one host; the lock lives where the registry does:

- A SQL store (``sqlite:``, ``postgresql:``, ``mysql:``, ``mssql:`` registry URIs): a row of the table
  ``lowlm_gate_locks`` (``name`` primary key, ``holder``, ``acquired_at`` ms since the epoch), in the
  store's own database, created when missing. Taking the lock is one INSERT: the primary key lets exactly
  one holder in, the others retry with backoff until ``timeout_s``. While held, a heartbeat thread
  refreshes ``acquired_at``; a row not refreshed for ``stale_s`` (its holder died) is deleted with a
  warning, conditionally on the row being unchanged, so two waiters cannot both break it.
- Any other registry (an MLflow server over ``http(s)://``: no database access): no lock is possible,
  and ``champion_lock`` yields ``None``; the caller falls back to compare-and-set (re-reading the alias
  after setting it, ``tasks.register.gate``).

Settings from the environment: ``LOWLM_CHAMPION_LOCK`` (``auto``: the table for SQL stores, else
compare-and-set; ``database``; ``compare-and-set``), ``LOWLM_CHAMPION_LOCK_TIMEOUT_S`` (1800),
``LOWLM_CHAMPION_LOCK_STALE_S`` (300).

Limits: a holder whose heartbeat stalls for ``stale_s`` (a suspended machine) loses the lock to a waiter;
it notices (``check`` raises) before its next alias write, but a write already under way can still land.
Staleness compares clocks of different hosts: they must agree to well within ``stale_s``.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

LOCK_TABLE = "lowlm_gate_locks"
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
MODES = ("auto", "database", "compare-and-set")

log = logging.getLogger(__name__)

LOCKS = sa.Table(
    LOCK_TABLE, sa.MetaData(),
    sa.Column("name", sa.String(256), primary_key=True),  # the registered model's name (MLflow: <= 256)
    sa.Column("holder", sa.String(256), nullable=False),  # host:pid:random, of whoever holds it
    sa.Column("acquired_at", sa.BigInteger, nullable=False),  # ms since the epoch, refreshed while held
)

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


class LockTimeout(TimeoutError):
    """Another holder kept the lock past the timeout."""


class LockLost(RuntimeError):
    """Our lock was broken as stale by another process while we held it."""


def is_sql(uri: str) -> bool:
    """Whether ``uri`` names a database MLflow's SQL store uses (and so can hold the lock table).

    >>> is_sql("sqlite:///mlruns/mlflow.db"), is_sql("postgresql+psycopg2://db/mlflow"), is_sql("http://mlflow:5000")
    (True, True, False)
    """
    return uri.partition(":")[0].partition("+")[0].lower() in SQL_SCHEMES


def _setting(key: str, default: float) -> float:
    text = os.environ.get(key)
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{key}={text!r}: expected a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{key}={text!r}: expected a positive number of seconds")
    return value


def _engine(uri: str) -> sa.Engine:
    """One engine per URI, with the lock table created if missing. No pooled connections (NullPool):
    nothing is shared with a forked child. SQLite waits up to 30 s on a busy database."""
    with _engines_lock:
        if uri not in _engines:
            engine = sa.create_engine(uri, poolclass=NullPool,
                                      connect_args={"timeout": 30} if uri.startswith("sqlite") else {})
            if not sa.inspect(engine).has_table(LOCK_TABLE):
                try:
                    LOCKS.create(engine)
                except sa.exc.DBAPIError:  # another process created it at the same moment
                    if not sa.inspect(engine).has_table(LOCK_TABLE):
                        raise
            _engines[uri] = engine
        return _engines[uri]


def _now_ms() -> int:
    return int(time.time() * 1000)


class ChampionLock:
    """The lock row of model ``name`` in the database at ``uri``; ``with ChampionLock(...) as lock:``."""

    def __init__(self, uri: str, name: str, timeout_s: float | None = None, stale_s: float | None = None):
        self.uri, self.name = uri, name
        self.timeout_s = timeout_s or _setting("LOWLM_CHAMPION_LOCK_TIMEOUT_S", 1800)
        self.stale_s = stale_s or _setting("LOWLM_CHAMPION_LOCK_STALE_S", 300)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:256]
        self.lost = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> None:
        engine = _engine(self.uri)
        deadline, delay = time.monotonic() + self.timeout_s, 0.02
        while True:
            try:
                with engine.begin() as conn:
                    conn.execute(LOCKS.insert().values(name=self.name, holder=self.holder, acquired_at=_now_ms()))
                break
            except sa.exc.IntegrityError:
                pass  # held: see by whom, and whether it is stale
            with engine.connect() as conn:
                row = conn.execute(sa.select(LOCKS.c.holder, LOCKS.c.acquired_at)
                                   .where(LOCKS.c.name == self.name)).first()
            if row is None:
                continue  # released in between
            age_s = (_now_ms() - row.acquired_at) / 1000
            if age_s > self.stale_s:
                with engine.begin() as conn:
                    broken = conn.execute(LOCKS.delete().where(
                        LOCKS.c.name == self.name, LOCKS.c.holder == row.holder,
                        LOCKS.c.acquired_at == row.acquired_at)).rowcount
                if broken:
                    log.warning("broke the champion lock of model %r held by %s: no heartbeat for %.0f s "
                                "(more than %.0f s)", self.name, row.holder, age_s, self.stale_s)
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(
                    f"model {self.name!r}: the champion lock is held by {row.holder} (refreshed {age_s:.0f} s "
                    f"ago); gave up after {self.timeout_s:.0f} s. A holder that died loses it after "
                    f"{self.stale_s:.0f} s without a heartbeat (LOWLM_CHAMPION_LOCK_STALE_S)")
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
        self._heartbeat = threading.Thread(target=self._beat, name=f"champion-lock:{self.name}", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        engine = _engine(self.uri)
        while not self._stop.wait(self.stale_s / 5):
            try:
                with engine.begin() as conn:
                    kept = conn.execute(LOCKS.update().where(LOCKS.c.name == self.name, LOCKS.c.holder == self.holder)
                                        .values(acquired_at=_now_ms())).rowcount
            except sa.exc.DBAPIError as exc:  # a busy or briefly unreachable database: try again next beat
                log.warning("champion lock of model %r: heartbeat failed (%s)", self.name, exc)
                continue
            if not kept:
                self.lost = True
                log.error("champion lock of model %r: broken as stale by another process", self.name)
                return

    def check(self) -> None:
        """Raise ``LockLost`` if another process broke our lock: call it before each alias write."""
        if self.lost:
            raise LockLost(f"model {self.name!r}: the champion lock was broken as stale by another process "
                           f"(no heartbeat for {self.stale_s:.0f} s) while this one held it")

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with _engine(self.uri).begin() as conn:
            kept = conn.execute(LOCKS.delete().where(LOCKS.c.name == self.name,
                                                     LOCKS.c.holder == self.holder)).rowcount
        if not kept and not self.lost:
            log.warning("champion lock of model %r was gone at release (broken as stale)", self.name)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def champion_lock(uri: str, name: str, timeout_s: float | None = None,
                  stale_s: float | None = None) -> Iterator[ChampionLock | None]:
    """Hold model ``name``'s lock in the registry at ``uri``; yields the held ``ChampionLock``, or
    ``None`` where the store allows no lock (the caller then compares-and-sets)."""
    mode = os.environ.get("LOWLM_CHAMPION_LOCK", "auto")
    if mode not in MODES:
        raise ValueError(f"LOWLM_CHAMPION_LOCK={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "database" and not is_sql(uri):
        raise ValueError(f"LOWLM_CHAMPION_LOCK=database, but the registry {uri} is no SQL database")
    if mode == "compare-and-set" or not is_sql(uri):
        yield None
        return
    with ChampionLock(uri, name, timeout_s, stale_s) as lock:
        yield lock
