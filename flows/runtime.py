"""What every entry point does before and around a job: environment, secrets, the store, signals, debris.

- ``prepare_environment()``: offline, quiet settings (and ``OMP_WAIT_POLICY=PASSIVE``) before torch,
  Prefect, MLflow or datasets load; every entry point (``lowlm``, ``python -m flows.*``, the
  benchmark scripts) calls it first.
- ``mask(text)``: credentials out of every message: ``scheme://user:***@host``, ``password=***``,
  and the value of any setting whose name says it is secret (``db_password: ***``).
- ``check_store(uri)``: the MLflow tracking store answers within a few seconds, or ``StoreUnavailable``
  naming the (masked) URI, instead of MLflow's minutes of retries.
- ``terminate_gracefully()``: SIGTERM (and SIGHUP) raise ``Terminated``, a ``KeyboardInterrupt``, so
  ``with`` blocks unwind: MLflow runs end FAILED, Prefect's temporary server is stopped at exit.
- ``fail_stale_runs(uri)``: runs this project started on this host whose process is gone (``kill -9``,
  a power cut) are marked FAILED, with a tag that says so.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What the Makefile exports, for a `lowlm` (or `python -m flows.X`) started by hand.
ENV_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads spin otherwise: 30-80x slower steps on 2 cores
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # run links would carry the server's credentials
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a bar per verified download clutters `predict --json`
}
STORE_TIMEOUT_ENV = "LOWLM_STORE_TIMEOUT"
DEFAULT_STORE_TIMEOUT = 5.0


def prepare_environment() -> None:
    """Set the defaults above (what is already set wins) and the NLTK data path; warn if torch
    loaded first (OpenMP reads its wait policy once, when torch loads)."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    nltk_data = ROOT.parent / "shared" / "data" / "nltk_data"  # WordNet for synonym augmentation
    if "NLTK_DATA" not in os.environ and nltk_data.is_dir():
        os.environ["NLTK_DATA"] = str(nltk_data)


# ------------------------------------------------------------------------------------------ secrets

from lowlm.config.secrets import mask  # noqa: E402  (light: no torch, no pydantic models)


def install_log_masking() -> None:
    """Mask credentials in every record of the Python loggers (Prefect's, MLflow's, ours)."""
    import logging

    class _Mask(logging.Filter):
        def filter(self, record):
            message = record.getMessage()
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, ()
            return True

    factory = logging.getLogRecordFactory()
    if getattr(factory, "_lowlm_masks", False):
        return

    def masked_factory(*args, **kwargs):
        record = factory(*args, **kwargs)
        _Mask().filter(record)
        return record

    masked_factory._lowlm_masks = True
    logging.setLogRecordFactory(masked_factory)


# -------------------------------------------------------------------------------------------- store


class StoreUnavailable(RuntimeError):
    """The tracking store does not answer; the message names its (masked) URI."""


def store_timeout() -> float:
    raw = os.environ.get(STORE_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_STORE_TIMEOUT
    except ValueError:
        raise StoreUnavailable(f"{STORE_TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None


def check_store(uri: str, timeout: float | None = None) -> None:
    """Raise ``StoreUnavailable`` unless the MLflow store at ``uri`` answers within ``timeout`` seconds.

    http(s): its ``/health`` (or ``/api/2.0/mlflow/experiments/search``); SQL databases: a connection
    with that connect timeout; SQLite: its folder exists or can be made and is writable.
    """
    timeout = store_timeout() if timeout is None else timeout
    scheme = uri.split(":", 1)[0].lower() if "://" in uri else "file"
    shown = mask(uri)
    try:
        if scheme in ("http", "https"):
            _check_http(uri, timeout)
        elif scheme == "sqlite":
            _check_sqlite(uri)
        elif scheme.split("+")[0] in ("postgresql", "postgres", "mysql", "mssql"):
            _check_sql(uri, timeout)
        elif scheme == "file":
            folder = Path(uri.removeprefix("file://"))
            if folder.exists() and not os.access(folder, os.W_OK):
                raise OSError(f"{folder} is not writable")
    except StoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 -- every cause gets the same one-line report
        reason = mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise StoreUnavailable(f"the MLflow tracking store {shown} cannot be reached ({reason}; waited at most "
                               f"{timeout:g} s); start it or set MLFLOW_TRACKING_URI ({STORE_TIMEOUT_ENV} sets "
                               f"the wait)") from None


def _check_http(uri: str, timeout: float) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    request = urllib.request.Request(f"{base}/health")
    if parts.username:
        import base64

        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 500:
                raise OSError(f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise OSError(f"HTTP {exc.code}") from None
        # 401/403/404: something answers; MLflow itself reports what it thinks of the credentials


def _check_sqlite(uri: str) -> None:
    path = uri.removeprefix("sqlite:///")
    if path in ("", ":memory:"):
        return
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise OSError(f"{folder} is not writable")


def _check_sql(uri: str, timeout: float) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": max(1, int(timeout))}, poolclass=None)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ signals


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP as an exception: ``with`` blocks unwind (runs end FAILED), atexit handlers run."""


def terminate_gracefully() -> None:
    """In the main thread: SIGTERM and SIGHUP raise ``Terminated``; SIGINT already raises KeyboardInterrupt."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        signal.signal(signum, signal.SIG_DFL)  # a second signal kills at once
        raise Terminated(f"stopped by {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# ---------------------------------------------------------------------------------- stale MLflow runs

def _alive(pid: int, started: str | None) -> bool:
    from tasks._stage import process_start

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = process_start(pid)
    return started in (None, "None", "") or now is None or str(now) == started


def fail_stale_runs(uri: str, experiment_names: list[str] | None = None) -> list[str]:
    """Mark FAILED the RUNNING runs that this host's lowlm started from a process that is gone; returns
    their run ids. Runs of other hosts are left alone (their processes cannot be checked from here)."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus, ViewType

    from tasks._stage import HOST_TAG, PID_TAG, START_TAG

    client = MlflowClient(uri)
    experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    if experiment_names is not None:
        experiments = [e for e in experiments if e.name in experiment_names]
    if not experiments:
        return []
    host = socket.gethostname()
    stale = []
    runs = client.search_runs([e.experiment_id for e in experiments], filter_string="attributes.status = 'RUNNING'",
                              max_results=1000)
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        if _alive(int(tags[PID_TAG]), tags.get(START_TAG)):
            continue
        client.set_tag(run.info.run_id, "lowlm.failed_reason",
                       f"process {tags[PID_TAG]} on {host} ended without closing the run (killed); marked FAILED "
                       f"at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
        stale.append(run.info.run_id)
    return stale


def echo_err(message: str) -> None:
    print(mask(message), file=sys.stderr)


# ------------------------------------------------------------------- paths of runs started via the API

ALLOWED_ROOTS_ENV = "LOWLM_ALLOWED_ROOTS"
PATH_FIELDS = {"path", "validation_file", "test_file", "source_path", "target_path", "validation_source",
               "validation_target", "test_source", "test_target", "validation_path", "test_path", "work_dir"}


class PathNotAllowed(ValueError):
    """A run started through the Prefect API names a path outside the roots its deployment allows."""


def allowed_roots() -> list[Path]:
    """``LOWLM_ALLOWED_ROOTS`` (paths joined by ``os.pathsep``), else the project's ``data/``,
    ``configs/`` and ``.lowlm/`` work folder and ``../shared/data``; resolved."""
    raw = os.environ.get(ALLOWED_ROOTS_ENV, "")
    roots = [Path(p) for p in raw.split(os.pathsep) if p] if raw else [
        ROOT / "data", ROOT / "configs", ROOT / ".lowlm", ROOT.parent / "shared" / "data"]
    return [r.expanduser().resolve() for r in roots]


def started_through_api() -> bool:
    """Whether this flow run belongs to a deployment (started from the UI, the API, a schedule or an event)."""
    try:
        from prefect.runtime import deployment
    except ImportError:
        return False
    return deployment.id is not None


def config_paths(data, where: str = "config") -> dict[str, str]:
    """Every file or folder setting in a config (as a dict), by its dotted name."""
    found = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{where}.{key}"
            if key in PATH_FIELDS and isinstance(value, str):
                found[name] = value
            elif isinstance(value, (dict, list)):
                found.update(config_paths(value, name))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.update(config_paths(value, f"{where}[{i}]"))
    return found


def check_api_paths(paths: dict[str, str], roots: list[Path] | None = None) -> None:
    """For a run started through the Prefect API: every path (name -> value) must resolve inside an
    allowed root, else ``PathNotAllowed`` naming the parameter, its resolved path and the roots. Runs
    started in this process (``lowlm run``) are the user's own and are not restricted."""
    roots = allowed_roots() if roots is None else roots
    for name, value in paths.items():
        resolved = Path(value).expanduser().resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            raise PathNotAllowed(
                f"{name}: {value!r} resolves to {resolved}, outside the folders this deployment allows "
                f"({', '.join(map(str, roots))}); runs started through the API may only read and write there "
                f"(add a folder with `lowlm serve --allow-root PATH` or {ALLOWED_ROOTS_ENV})")


def guard_api_run(config=None, **paths: str) -> None:
    """``check_api_paths`` over a config's path settings and the given parameters, when this flow run was
    started through the API."""
    if not started_through_api():
        return
    named = config_paths(config.model_dump(mode="json")) if config is not None else {}
    named.update({k: v for k, v in paths.items() if v})
    check_api_paths(named)
