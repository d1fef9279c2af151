"""A local PostgreSQL for trying the team set-up on one machine: a cluster in a folder, bound to 127.0.0.1.

``initdb`` refuses to run as root, so as root every server command runs as the ``postgres`` user
(``runuser -u postgres``), which owns the data folder. The cluster trusts connections from
127.0.0.1 only, with no Unix socket: it is for one machine, never a shared host (docs/team.md has
the set-up a team runs for real). The binaries are found on PATH, or in Debian's
``/usr/lib/postgresql/N/bin`` (the ``postgresql`` package).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "lowlm"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries, or a cluster that would not start; the message says which and why."""


def binary(name: str) -> str:
    """The path of a PostgreSQL program (``initdb``, ``pg_ctl``, ``pg_isready``)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise PostgresUnavailable(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin: install Debian's "
                                  "`postgresql` package (apt-get install postgresql) or point PATH at its bin/")
    return found


def _as_owner(command: list[str]) -> list[str]:
    """Run as the ``postgres`` user when this process is root (PostgreSQL will not run as root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


@dataclass
class Cluster:
    """A PostgreSQL cluster in ``folder`` (data in ``folder/data``, log ``folder/postgres.log``) on ``port``."""

    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str = "postgres", driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def init(self) -> None:
        """Create the cluster unless the folder already holds one."""
        if (self.data / "PG_VERSION").exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        for path in (self.folder, self.data):
            _own(path)
        if subprocess.run(_as_owner(["test", "-w", str(self.data)])).returncode != 0:
            raise PostgresUnavailable(f"PostgreSQL runs as the postgres user, who cannot reach {self.data}: use a "
                                      "folder whose parents every user may enter (chmod o+x), e.g. under the project")
        run = subprocess.run(_as_owner([binary("initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                                        "--encoding=UTF8", "--no-instructions"]), capture_output=True, text=True)
        if run.returncode != 0:
            raise PostgresUnavailable(f"initdb {self.data} failed ({run.returncode}): {run.stderr.strip()[-2000:]}")

    def running(self) -> bool:
        return subprocess.run([binary("pg_isready"), "-q", "-h", HOST, "-p", str(self.port)]).returncode == 0

    def start(self, timeout: float = 60.0) -> "Cluster":
        """Start the server on 127.0.0.1:``port`` (no Unix socket) and wait until it accepts connections."""
        self.init()
        if self.running():
            return self
        options = f"-h {HOST} -p {self.port} -k ''"
        run = subprocess.run(_as_owner([binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                                        "-w", "-t", str(int(timeout)), "start"]), capture_output=True, text=True)
        if run.returncode != 0 and not self.running():
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
            raise PostgresUnavailable(f"PostgreSQL on {HOST}:{self.port} did not start ({run.stderr.strip()}); "
                                      f"its log ({self.log}) ends:\n{log}")
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL on {HOST}:{self.port} does not accept connections")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_owner([binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                           capture_output=True)
