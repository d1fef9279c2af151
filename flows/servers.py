"""Local servers the project starts and stops itself: the Prefect API/UI and the MLflow UI/REST server.

Every server binds to 127.0.0.1, writes its output to a log file, and is stopped (process group,
SIGTERM then SIGKILL) by whoever started it: ``lowlm ui``/``lowlm serve`` on exit, the test
fixtures at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Server:
    """A started server: its process, its base URL, and the log it writes."""

    name: str
    process: subprocess.Popen
    url: str
    health: str
    log: Path

    def wait(self, timeout: float = 120.0) -> "Server":
        """Block until the health URL answers; a server that exits or never answers raises with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; its log "
                                   f"({self.log}) ends:\n{_tail(self.log)}")
            if http_ok(self.health):
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer {self.health} within {timeout:.0f} s; its log ({self.log}) "
                           f"ends:\n{_tail(self.log)}")

    def stop(self, grace: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start(name: str, command: list[str], url: str, health: str, log: Path, env: dict | None = None,
           cwd: Path | None = None) -> Server:
    log.parent.mkdir(parents=True, exist_ok=True)
    # this environment's bin/ first: `mlflow models serve` execs `uvicorn` by name
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PATH": path, **(env or {})}, start_new_session=True,
                                   cwd=cwd)
    return Server(name, process, url, health, log)


def start_prefect(port: int, log_dir: Path, home: str | None = None, ui: bool = True,
                  database: str | None = None) -> Server:
    """``prefect server start`` on 127.0.0.1:``port`` (its SQLite database under PREFECT_HOME or ``home``, or
    the PostgreSQL ``database``: a ``postgresql+asyncpg://`` URL)."""
    url = f"http://{HOST}:{port}"
    # the UI calls the API at PREFECT_SERVER_UI_API_URL, which otherwise says port 4200
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_UI_ENABLED": "true" if ui else "false", "PREFECT_API_URL": "",
           "PREFECT_SERVER_UI_API_URL": f"{url}/api"}
    if home:
        env["PREFECT_HOME"] = home
    if database:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
    return _start("Prefect server", [str(BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(port)],
                  url, f"{url}/api/health", log_dir / f"prefect-{port}.log", env)


def start_mlflow(port: int, backend_uri: str, log_dir: Path, artifacts: str | None = None) -> Server:
    """``mlflow server`` (UI, REST tracking API and artifact proxy) on 127.0.0.1:``port``, one process;
    ``artifacts``: where the proxy keeps artifacts (a folder or an object store URI such as s3://bucket/path)."""
    url = f"http://{HOST}:{port}"
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", backend_uri, "--host", HOST,
               "--port", str(port), "--workers", "1"]
    if artifacts:
        command += ["--serve-artifacts", "--artifacts-destination", artifacts]
    return _start("MLflow server", command, url, f"{url}/health", log_dir / f"mlflow-{port}.log",
                  {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def start_model_server(model_uri: str, port: int, log_dir: Path, tracking_uri: str | None = None,
                       env: dict[str, str] | None = None) -> Server:
    """A registered model (or a local model folder) over REST on 127.0.0.1:``port``: MLflow's scoring app
    behind lowlm's request front (``flows.model_server``: body size limit, every ``inputs`` item a
    string), in this environment, one worker; ``env`` is added to the server's environment (e.g. the
    pyfunc's LOWLM_MAX_ROWS / LOWLM_MAX_CHARS, read when the model loads)."""
    url = f"http://{HOST}:{port}"
    env = {**({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}), **(env or {})}
    command = [sys.executable, "-m", "flows.model_server", model_uri, "--port", str(port)]
    return _start("model server", command, url, f"{url}/ping", log_dir / f"model-{port}.log", env,
                  cwd=Path(__file__).resolve().parents[1])
