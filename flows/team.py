"""The team's servers on PostgreSQL: the MLflow tracking server and the Prefect server, one database each.

    PostgreSQL  ── NAME          ◂── mlflow server  (REST, UI, artifact proxy to the artifact root)
                ── NAME_prefect  ◂── prefect server (API, UI)
                ── NAME_optuna   ◂── sweeps (lowlm sweep --storage ...)

``start_servers`` starts both on 127.0.0.1 against a PostgreSQL server URL
(``postgresql://user:password@host:port/NAME``, NAME default ``lowlm``), creating the databases it
lacks: ``lowlm ui --database URL`` runs them in the foreground. ``up`` / ``down`` (``make team-up`` /
``make team-down``) start and stop a local PostgreSQL cluster (``flows.postgres``) plus both servers
in the background, for trying the set-up on one machine; what they started is recorded in
``FOLDER/team.json``. The workers reach the servers by ``MLFLOW_TRACKING_URI`` and
``PREFECT_API_URL`` (``environment``), and the artifacts through the MLflow server. docs/team.md.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flows.postgres import Cluster
from flows.servers import HOST, Server, port_in_use, start_mlflow, start_prefect

DEFAULT_DATABASE = "lowlm"


class TeamError(RuntimeError):
    """A bad database URL, a port in use, or no team set-up to stop; the message says which."""


def databases(url: str) -> dict[str, str]:
    """The databases of a team on the PostgreSQL server ``url``: SQLAlchemy URLs with the installed drivers."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg") or not parts.hostname:
        raise TeamError(f"--database {url!r}: expected a PostgreSQL server, postgresql://user@host:port/NAME "
                        "(a password after user:, NAME default lowlm)")
    name = parts.path.strip("/") or DEFAULT_DATABASE

    def at(scheme: str, database: str) -> str:
        return urlunsplit(parts._replace(scheme=scheme, path=f"/{database}"))

    return {"mlflow": at("postgresql+psycopg", name), "prefect": at("postgresql+asyncpg", f"{name}_prefect"),
            "optuna": at("postgresql", f"{name}_optuna")}


def start_servers(database_url: str, mlflow_port: int, prefect_port: int, artifacts: str, log_dir: Path,
                  prefect: bool = True) -> list[Server]:
    """The MLflow server (and the Prefect server) on the team's databases, started and answering."""
    from tasks.sweep import ensure_database

    taken = [p for p in (mlflow_port, *([prefect_port] if prefect else [])) if port_in_use(p)]
    if taken:
        raise TeamError(f"port(s) {', '.join(map(str, taken))} already in use on {HOST}")
    urls = databases(database_url)
    for key in ("mlflow", "prefect", "optuna"):
        ensure_database(urls[key].replace("+asyncpg", "+psycopg"))
    servers = [start_mlflow(mlflow_port, urls["mlflow"], log_dir, artifacts=artifacts)]
    if prefect:
        servers.append(start_prefect(prefect_port, log_dir, database=urls["prefect"]))
    try:
        for server in servers:
            server.wait(timeout=180)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def environment(mlflow_port: int, prefect_port: int, database_url: str) -> dict[str, str]:
    """What a worker, a CLI or a flow needs to use the team's servers (and a sweep its study database)."""
    return {"MLFLOW_TRACKING_URI": f"http://{HOST}:{mlflow_port}", "PREFECT_API_URL": f"http://{HOST}:{prefect_port}/api",
            "LOWLM_SWEEP_STORAGE": databases(database_url)["optuna"]}


def up(folder: Path, postgres_port: int, mlflow_port: int, prefect_port: int) -> dict:
    """A local PostgreSQL in ``folder/postgres`` and both servers on it, left running; returns what ``down`` stops."""
    folder = folder.resolve()
    state_file = folder / "team.json"
    if state_file.exists():
        raise TeamError(f"{state_file} exists: the team set-up is up (or was not stopped); `make team-down` first")
    cluster = Cluster(folder / "postgres", postgres_port).start()
    try:
        servers = start_servers(cluster.url(DEFAULT_DATABASE), mlflow_port, prefect_port, str(folder / "artifacts"),
                                folder / "logs")
    except BaseException:
        cluster.stop()
        raise
    state = {"postgres": {"folder": str(cluster.folder), "port": postgres_port, "url": cluster.url(DEFAULT_DATABASE)},
             "servers": [{"name": s.name, "pid": s.process.pid, "url": s.url, "log": str(s.log)} for s in servers],
             "environment": environment(mlflow_port, prefect_port, cluster.url(DEFAULT_DATABASE))}
    state_file.write_text(json.dumps(state, indent=2))
    return state


def down(folder: Path) -> dict:
    """Stop what ``up`` started in ``folder`` (servers, then PostgreSQL); returns the state it stopped."""
    state_file = folder.resolve() / "team.json"
    if not state_file.exists():
        raise TeamError(f"{state_file} not found: nothing to stop (was `make team-up` run here?)")
    state = json.loads(state_file.read_text())
    for server in state["servers"]:
        try:
            os.killpg(server["pid"], signal.SIGTERM)  # each server leads its own process group
        except ProcessLookupError:
            pass
    for server in state["servers"]:
        _wait_gone(server["pid"])
    Cluster(Path(state["postgres"]["folder"]), state["postgres"]["port"]).stop()
    state_file.unlink()
    return state


def _wait_gone(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:  # our own child (up ran in this process): reaped now
                return
        except ChildProcessError:
            pass  # another process's child: gone once the group is
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
