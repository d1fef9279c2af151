"""Writing files so that a failure leaves nothing half-written, and a full disk says so.

torch reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``;
SQLite as "database or disk is full". ``DiskFull`` (an ``OSError`` with ``errno.ENOSPC``) names the
path being written and the space left, whatever the writer said.

>>> with atomic_folder(tmp / "bundle") as partial:          # doctest: +SKIP
...     torch.save(state, partial / "weights.pt")            # all or nothing at tmp/bundle
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


LOW_SPACE = 4 << 20  # below this many free bytes, a failed write is taken for a full disk


class DiskFull(OSError):
    """No space left where a file was being written; the message names the path and the space left."""

    def __init__(self, path: str | Path, cause: BaseException | None = None):
        free = free_bytes(path)
        why = f": {cause}" if cause else ""
        super().__init__(errno.ENOSPC, f"no space left on device writing {path} ({free / 1e6:.1f} MB free){why}")


def free_bytes(path: str | Path) -> int:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def is_disk_full(exc: BaseException, path: str | Path | None = None) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk: ENOSPC/EDQUOT, SQLite's "database or disk is
    full", or torch's failed write where the disk has (almost) no space left."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
        if path is not None and isinstance(exc, RuntimeError) and "enforce fail" in text \
                and free_bytes(path) < LOW_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def save_tensors(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file renamed into place: never half a file; a
    full disk raises ``DiskFull`` and leaves nothing behind."""
    import torch  # here, not at import: the data modules use this file too

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc, path.parent):
            raise DiskFull(path, exc) from exc
        raise
    return path


@contextmanager
def atomic_folder(folder: str | Path):
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder``, on any failure it
    is removed (and a full disk raises ``DiskFull``), so ``folder`` is either complete or as it was."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        yield partial
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(partial, folder)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if is_disk_full(exc, folder.parent) and not isinstance(exc, DiskFull):
            raise DiskFull(folder, exc) from exc
        raise


def write_once(folder: str | Path, write) -> Path:
    """Make ``folder`` by ``write(partial)`` into a temporary folder beside it, renamed into place; a
    folder already there is kept as it is (content-addressed folders: the same name, the same bytes),
    and so is one another process renames into place first."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(partial)
        os.replace(partial, folder)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not folder.is_dir():  # not a concurrent writer: a real failure
            raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder

