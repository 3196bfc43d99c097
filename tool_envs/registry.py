"""Registry of environments: built-ins (``tool_envs/envs/<name>/env.{yaml,yml,json}``) plus user files.

Names resolve in this order: a registered name, a built-in name, a backend class name of a built-in
(``GorillaFileSystem`` finds ``gorilla_file_system``), an environment in the **search path**, then a path
to a schema file.

The search path lists folders holding environments kept outside the repository: in each folder, a
subfolder ``<name>/`` with ``env.yaml`` (``.yml``, ``.json``) is the environment ``<name>``, and an
``env.yaml`` in the folder itself is the environment its ``name`` field says. It is the folders given to
:func:`set_env_path` (the local engine's ``data.env_path``, the CLI's ``--env-path``) followed by those
in the ``TOOL_ENVS_PATH`` environment variable (``os.pathsep``-separated).
"""
from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import threading
from typing import Any, Callable, Iterable

from tool_envs.env import ToolEnv
from tool_envs.hooks import GENERIC_HOOK
from tool_envs.schema import SCHEMA_SUFFIXES, EnvSpec, SchemaError, import_entry_point, import_generator, load_spec

BUILTIN_DIR = pathlib.Path(__file__).with_name("envs")

_LOCK = threading.Lock()
_USER: dict[str, EnvSpec] = {}  # registry of user-registered environments
ENV_PATH_VAR = "TOOL_ENVS_PATH"
_PATH: list[str] = []  # folders set with set_env_path


def set_env_path(folders: Iterable[str | os.PathLike]) -> None:
    """Set the configured environment search path (searched before ``$TOOL_ENVS_PATH``)."""
    global _PATH
    with _LOCK:
        _PATH = [str(pathlib.Path(f).expanduser()) for f in folders]


def env_path() -> list[pathlib.Path]:
    """The search path: the configured folders, then those of ``$TOOL_ENVS_PATH``."""
    extra = [p for p in os.environ.get(ENV_PATH_VAR, "").split(os.pathsep) if p]
    return [pathlib.Path(p) for p in (*_PATH, *extra)]


@functools.lru_cache(maxsize=256)
def _name_in_file(path: str, mtime: float) -> str | None:  # noqa: ARG001 - mtime keys the cache
    try:
        return load_spec(path, check_backend=False).name
    except SchemaError:
        return None


def _search(name: str) -> pathlib.Path | None:
    for folder in env_path():
        for suffix in SCHEMA_SUFFIXES:
            f = folder / name / f"env{suffix}"
            if f.is_file():
                return f
        for suffix in SCHEMA_SUFFIXES:
            f = folder / f"env{suffix}"
            if f.is_file() and _name_in_file(str(f), f.stat().st_mtime) == name:
                return f
    return None


def _search_path_envs() -> list[str]:
    names = []
    for folder in env_path():
        if not folder.is_dir():
            continue
        for suffix in SCHEMA_SUFFIXES:
            f = folder / f"env{suffix}"
            if f.is_file() and (n := _name_in_file(str(f), f.stat().st_mtime)):
                names.append(n)
        names += [d.name for d in folder.iterdir() if d.is_dir() and any((d / f"env{s}").is_file() for s in SCHEMA_SUFFIXES)]
    return names


@functools.lru_cache(maxsize=1)
def _builtin_files() -> dict[str, pathlib.Path]:
    out = {}
    for d in sorted(p for p in BUILTIN_DIR.iterdir() if p.is_dir()):
        for suffix in SCHEMA_SUFFIXES:
            f = d / f"env{suffix}"
            if f.is_file():
                out[d.name] = f
                break
    return out


@functools.lru_cache(maxsize=None)
def _builtin_spec(name: str) -> EnvSpec:
    spec = load_spec(_builtin_files()[name])
    if spec.name != name:
        raise SchemaError(spec.source, "$.name", f"built-in folder {name!r} holds environment {spec.name!r}", "make the folder name and `name` equal")
    return spec


@functools.lru_cache(maxsize=1)
def _class_aliases() -> dict[str, str]:
    """Backend class name → built-in env name (BFCL tasks name their classes)."""
    out: dict[str, str] = {}
    for name in _builtin_files():
        spec = _builtin_spec(name)
        if spec.backend is not None:
            out.setdefault(spec.backend.class_name, name)
    return out


def list_envs() -> list[str]:
    """Names of every built-in, registered and search-path environment."""
    with _LOCK:
        return sorted(set(_builtin_files()) | set(_USER) | set(_search_path_envs()))


def register_env(spec_or_path: EnvSpec | str | pathlib.Path, name: str | None = None, overwrite: bool = False) -> EnvSpec:
    """Add an environment to the registry (from a schema file path or a spec)."""
    spec = spec_or_path if isinstance(spec_or_path, EnvSpec) else load_spec(spec_or_path)
    key = name or spec.name
    with _LOCK:
        if not overwrite and (key in _USER or key in _builtin_files()):
            raise ValueError(f"environment {key!r} is already registered; pass overwrite=True or choose another name")
        _USER[key] = spec
    _composed.cache_clear()
    return spec


@contextlib.contextmanager
def registered(specs: Iterable[EnvSpec]):
    """Register ``specs`` by name for the duration of a ``with`` block (earlier registrations come back)."""
    specs = list(specs)
    with _LOCK:
        saved = {s.name: _USER.get(s.name) for s in specs}
        _USER.update({s.name: s for s in specs})
    _composed.cache_clear()
    try:
        yield
    finally:
        with _LOCK:
            for name, old in saved.items():
                if old is None:
                    _USER.pop(name, None)
                else:
                    _USER[name] = old
        _composed.cache_clear()


def get_spec(path_or_name: str | pathlib.Path) -> EnvSpec:
    """Resolve a name (registered, built-in, backend class) or a schema-file path to its spec."""
    key = str(path_or_name)
    with _LOCK:
        if key in _USER:
            return _USER[key]
    if key in _builtin_files():
        return _builtin_spec(key)
    alias = _class_aliases().get(key)
    if alias:
        return _builtin_spec(alias)
    found = _search(key) if "/" not in key and os.sep not in key else None
    if found is not None:
        spec = load_spec(found)
        if spec.name != key:
            raise SchemaError(str(found), "$.name", f"found as environment {key!r} (its folder name) but named {spec.name!r}", "make the folder name and `name` equal")
        return spec
    p = pathlib.Path(key)
    if p.suffix in SCHEMA_SUFFIXES or p.exists():
        return load_spec(p)
    where = ", ".join(str(f) for f in env_path()) or "empty"
    raise KeyError(f"unknown environment {key!r}: not a registered or built-in name, a backend class name, an environment "
                   f"in the search path ({where}) or a schema file. Fix: add its folder to data.env_path / --env-path / "
                   f"${ENV_PATH_VAR}, or name the schema file. Known: {', '.join(list_envs())}")


@functools.lru_cache(maxsize=256)
def _composed(names: tuple[str, ...], search_path: tuple[str, ...]) -> ToolEnv:  # noqa: ARG001 - keys the cache
    return ToolEnv([get_spec(n) for n in names])


def _search_key() -> tuple[str, ...]:
    return tuple(str(p) for p in env_path())


def load_env(path_or_name: str | pathlib.Path) -> ToolEnv:
    """The :class:`ToolEnv` of a built-in/registered name, a backend class name, a search-path environment
    or a schema-file path.

    Environments are cached (they are immutable; all state lives in episodes).
    """
    return _composed((str(path_or_name),), _search_key())


def env_for_task(task: Any) -> ToolEnv:
    """One environment composing every environment a task involves (``task.envs``, in order)."""
    envs = task.get("envs") if isinstance(task, dict) else task.envs
    if isinstance(envs, str):
        envs = [envs]
    if not envs:
        raise ValueError(f"task {getattr(task, 'id', '?')!r} names no environment (field `envs`)")
    return _composed(tuple(str(e) for e in envs), _search_key())


def task_generator(path_or_name: str | pathlib.Path) -> Callable[..., list]:
    """The task generator an environment's schema file registers (``generator: module:function``), called
    as ``fn(n, seed=..., split="train"|"heldout", **options)``; ``ValueError`` when it registers none."""
    return import_generator(get_spec(path_or_name))


@functools.lru_cache(maxsize=1)
def builtin_hooks() -> tuple:
    """The distinct hooks the built-in schema files name, plus the generic one (e.g. to read their entry
    formats). Reads only the files: no backend is imported."""
    refs = sorted({spec.hook for spec in (load_spec(p, check_backend=False) for p in _builtin_files().values()) if spec.hook})
    return (*(import_entry_point(ref) for ref in refs), GENERIC_HOOK)
