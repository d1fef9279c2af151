"""How stages are cached: keys, where results are kept, and why a cache hit never points at missing files.

A stage's cache key is the digest of

- its inputs, less ``tracking`` and ``resume`` (how to run, not what) (handles carry content digests, so new data changes the key),
- the code it runs: its task module and every ``lowlm``/``tasks`` module that module imports,
  followed transitively (editing the seq2seq model does not re-run classification's ingest),
- the identity of its work folder (absolute path + an id written when the folder is created), so two
  checkouts on one machine, or a work folder deleted and made again, never share a result;
- the MLflow store it logs to (its URI, not the run): against a new store the stages run and log
  again, so every run id a registered version names (``train_run_id``) is in the store it is in.

Results live next to the outputs they name: ``<work_dir>/results/`` (``WorkFolder.stage`` binds a
task to it). A stored result that names a file which no longer exists is dropped before Prefect
looks it up, so that stage runs again instead of handing out a path to nothing.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import Task
from prefect.cache_policies import INPUTS, CachePolicy
from prefect.filesystems import LocalFileSystem

ID_FILE = ".work-id"
RESULTS = "results"
OUR_PACKAGES = ("lowlm", "tasks")


class WorkFolder:
    """A pipeline's work folder: stage outputs, their Prefect results, and the folder's identity.

    >>> import tempfile; w = WorkFolder(tempfile.mkdtemp()); w.identity == WorkFolder(w.path).identity
    True
    """

    def __init__(self, path: str | Path):
        self.root = Path(path).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.identity = folder_identity(self.root)
        self.storage = self.root / RESULTS  # a path: Prefect makes it a LocalFileSystem

    @property
    def path(self) -> str:
        """The absolute path, as stages receive it (and as their outputs are named)."""
        return str(self.root)

    def stage(self, task: Task) -> Task:
        """``task`` with its results (and cache records) kept in this folder."""
        return task.with_options(result_storage=self.storage)

    __call__ = stage


def folder_identity(root: Path) -> str:
    """``<absolute path>#<id>``; the id is made when the folder first gets one, so a folder
    deleted and created again is a new folder."""
    id_file = root / ID_FILE
    try:
        ident = id_file.read_text().strip()
    except FileNotFoundError:
        ident = ""
    if not ident:
        ident = uuid.uuid4().hex
        tmp = id_file.with_suffix(f".{ident}.tmp")
        tmp.write_text(ident)
        try:  # two processes starting at once: the first id written wins
            tmp.rename(id_file) if not id_file.exists() else tmp.unlink()
        except OSError:
            tmp.unlink(missing_ok=True)
        ident = id_file.read_text().strip()
    return f"{root}#{ident}"


@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _imported_modules(path: Path) -> frozenset[str]:
    """Names of our modules that ``path`` imports anywhere (top level or inside functions)."""
    stat = path.stat()
    return _parsed_imports(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=None)
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """``_imported_modules`` for one version of a file: each file is parsed once per change, not once
    per stage and run (a process runs every stage's key through here)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return frozenset(n for n in names if n.split(".")[0] in OUR_PACKAGES)


def code_files(module: str) -> list[Path]:
    """The files of ``module`` and of every module of ours it imports, transitively (with each
    package's ``__init__``), sorted.

    >>> [p.name for p in code_files("lowlm.text.tokenizer")][-1]
    'tokenizer.py'
    """
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module's parent packages run their __init__ too
            prefix = ".".join(parts[:i])
            if prefix in seen:
                continue
            path = _module_file(prefix)
            if path is None:
                continue
            seen[prefix] = path
            todo.extend(_imported_modules(path))
    return sorted(set(seen.values()))


def code_digest(module: str) -> str:
    """Hash of the code a module runs (see ``code_files``)."""
    h = hashlib.sha256()
    for path in code_files(module):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _paths_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths_in(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths_in(v)]
    if isinstance(value, str) and value.startswith("/") and "\n" not in value and len(value) < 4096:
        return [value]
    return []


def missing_outputs(record_file: Path, root: Path) -> list[str]:
    """The paths under ``root`` that a stored stage result names but that no longer exist."""
    try:
        record = json.loads(record_file.read_text())
        result = json.loads(record["result"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [p for p in _paths_in(result) if Path(p).is_relative_to(root) and not Path(p).exists()]


@dataclass
class StageCache(CachePolicy):
    """Inputs (less ``tracking``) + the code the stage runs + its work folder's identity + the store's URI.

    The work folder is the stage's ``work_dir`` input; stages without one are keyed on their inputs,
    whose handles name files in the work folder.
    """

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        inputs = dict(inputs or {})
        base = (INPUTS - "tracking" - "resume" - "callbacks").compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        module = task_ctx.task.fn.__module__ if task_ctx else ""
        work_dir = inputs.get("work_dir")
        identity = folder_identity(Path(work_dir).resolve()) if work_dir else ""
        # the store a stage logs to (not the run): a result cached for another store would hand the
        # registry run ids that store does not have, so lineage stays complete where a model is registered
        store = getattr(inputs.get("tracking"), "uri", "")
        key = hashlib.sha256(json.dumps([base, module, code_digest(module), identity, store]).encode()).hexdigest()[:32]
        if work_dir:
            _drop_if_stale(task_ctx, key, Path(work_dir).resolve())
        return key


def _drop_if_stale(task_ctx, key: str, root: Path) -> None:
    """Delete the stored result for ``key`` if it names outputs under ``root`` that are gone."""
    storage = getattr(task_ctx.task, "result_storage", None)
    if storage is None:
        from prefect.settings import get_current_settings

        base = Path(get_current_settings().results.local_storage_path)
    elif isinstance(storage, Path):
        base = storage
    elif isinstance(storage, LocalFileSystem):
        base = Path(storage.basepath)
    else:  # remote storage: its records are checked by whoever shares it
        return
    record = base.expanduser() / key
    if record.exists() and missing_outputs(record, root):
        record.unlink(missing_ok=True)


STAGE_CACHE = StageCache()
STAGE_OPTIONS = dict(cache_policy=STAGE_CACHE, persist_result=True, result_serializer="json")
