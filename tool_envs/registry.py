"""Registry of environments: built-ins (``tool_envs/envs/<name>/env.{yaml,yml,json}``) plus user files.

Names resolve in this order: a registered name, a backend class name of a built-in (``GorillaFileSystem``
finds ``gorilla_file_system``), then a path to a schema file.
"""
from __future__ import annotations

import functools
import pathlib
import threading
from typing import Any

from tool_envs.env import ToolEnv
from tool_envs.schema import SCHEMA_SUFFIXES, EnvSpec, SchemaError, load_spec

BUILTIN_DIR = pathlib.Path(__file__).with_name("envs")

_LOCK = threading.Lock()
_USER: dict[str, EnvSpec] = {}  # registry of user-registered environments


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
    """Names of every built-in and registered environment."""
    with _LOCK:
        return sorted(set(_builtin_files()) | set(_USER))


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
    p = pathlib.Path(key)
    if p.suffix in SCHEMA_SUFFIXES or p.exists():
        return load_spec(p)
    raise KeyError(f"unknown environment {key!r}: not a registered name, a backend class name or a schema file. Known: {', '.join(list_envs())}")


@functools.lru_cache(maxsize=256)
def _composed(names: tuple[str, ...]) -> ToolEnv:
    return ToolEnv([get_spec(n) for n in names])


def load_env(path_or_name: str | pathlib.Path) -> ToolEnv:
    """The :class:`ToolEnv` of a built-in/registered name, a backend class name or a schema-file path.

    Environments are cached (they are immutable; all state lives in episodes).
    """
    return _composed((str(path_or_name),))


def env_for_task(task: Any) -> ToolEnv:
    """One environment composing every environment a task involves (``task.envs``, in order)."""
    envs = task.get("envs") if isinstance(task, dict) else task.envs
    if isinstance(envs, str):
        envs = [envs]
    if not envs:
        raise ValueError(f"task {getattr(task, 'id', '?')!r} names no environment (field `envs`)")
    return _composed(tuple(str(e) for e in envs))
