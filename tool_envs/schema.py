# Over 400 lines on purpose: the schema-file format, its loader and its backend checks are one reference, in the order of the README's field table.
"""Environment schema files: load, validate (against ``env_schema.json`` via jsonschema), and describe.

A schema file (YAML or JSON) declares an environment's name, description, tools as OpenAI function
schemas, an optional backend class and limits. See ``tool_envs/README.md`` for the format. Every problem
is reported as a :class:`SchemaError` naming the file, the JSON path of the field and the fix.
"""
from __future__ import annotations

import copy
import functools
import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import pathlib
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

META_SCHEMA_PATH = pathlib.Path(__file__).with_name("env_schema.json")
SCHEMA_SUFFIXES = (".yaml", ".yml", ".json")


class SchemaError(ValueError):
    """A schema file (or a mapping standing in for one) is malformed.

    The message always names the file, the JSON path of the offending field and how to fix it; the same
    facts are kept as attributes for programmatic use.
    """

    def __init__(self, file: str, path: str, problem: str, fix: str):
        self.file, self.path, self.problem, self.fix = file, path, problem, fix
        super().__init__(f"{file}: {path}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class Limits:
    """Per-episode limits of an environment (all enforced by :class:`tool_envs.env.Episode` or the runner).

    Attributes:
        max_turns: Assistant generation steps per user turn the episode runner allows. Higher lets a model
            recover from errors; lower bounds rollout length (and cost) on a bad policy.
        max_calls_per_turn: Calls executed from one assistant message; the rest get an error result.
            Protects against a model spamming hundreds of calls in one message.
        call_timeout_s: Wall-clock limit of one backend call (``None``: no limit). With ``isolation:
            process`` an overrunning call's worker is killed and the call has no effect; with ``thread`` the
            call is interrupted (Python code only) and the episode stops running tools. Too low fails slow but
            legitimate calls; too high lets one stuck call hold its episode (never the others) that long.
        max_output_chars: Tool output longer than this is cut (and flagged ``truncated``). Lower keeps
            contexts short; BFCL environments use a large value so results stay identical to BFCL's.
        cpu_time_s: CPU seconds one call may use in a worker process (``isolation: process``; whole seconds,
            rounded up); the call then fails with an error and the worker lives on. ``None``: the same as
            ``call_timeout_s``. Matters when calls run long in wall time but should not burn CPU.
        memory_mb: Memory (address space) one request may add to its worker process (``isolation:
            process``); beyond it allocations raise ``MemoryError``, which the model sees as the call's error.
            ``None``: unlimited. Too low fails legitimate calls; the default fits ordinary Python backends.
    """

    max_turns: int = 16
    max_calls_per_turn: int = 16
    call_timeout_s: float | None = 10.0
    max_output_chars: int = 8000
    cpu_time_s: float | None = None
    memory_mb: int | None = 1024

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "Limits":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class BackendSpec:
    """Where a stateful environment's tools are implemented.

    Attributes:
        class_path: ``package.module.ClassName``; instantiated with no arguments, once per episode.
        init_method: Optional method called with a deep copy of the task's initial state (``{}`` when the
            task gives none), e.g. BFCL's ``_load_scenario``.
        init_options: Task options forwarded to ``init_method`` as keyword arguments (``long_context``).
        stateless: Never call ``init_method`` (BFCL's MathAPI has none).
        base_dir: The schema file's folder: a ``class`` whose first module is a file or package in this
            folder (``backend.Shop`` with ``backend.py`` beside the schema) is imported from there, without
            any ``PYTHONPATH`` setting (see :func:`import_backend_class`).
    """

    class_path: str
    init_method: str | None = None
    init_options: tuple[str, ...] = ()
    stateless: bool = False
    base_dir: str | None = None

    @property
    def class_name(self) -> str:
        return self.class_path.rsplit(".", 1)[1]

    def load_class(self) -> type:
        return import_backend_class(self.class_path, self.base_dir)


@dataclass(frozen=True)
class EnvSpec:
    """One parsed and validated schema file."""

    name: str
    tools: tuple[dict, ...]
    description: str = ""
    backend: BackendSpec | None = None
    limits: Limits = field(default_factory=Limits)
    source: str = "<mapping>"
    argument_checking: str = "coerce"
    isolation: str = "process"
    #: ``module:function`` that generates this environment's tasks (``None``: it has no generator).
    generator: str | None = None
    #: ``module:attribute``, an :class:`~tool_envs.hooks.EnvHook` (``None``: the generic hook).
    hook: str | None = None
    #: The schema file's folder: a generator module that is a file there is imported from there.
    base_dir: str | None = None

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]

    def to_dict(self) -> dict[str, Any]:
        """The schema-file form (round-trips through :func:`spec_from_mapping`)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.argument_checking != "coerce":
            out["argument_checking"] = self.argument_checking
        if self.isolation != "process":
            out["isolation"] = self.isolation
        if self.generator is not None:
            out["generator"] = self.generator
        if self.hook is not None:
            out["hook"] = self.hook
        if self.backend is not None:
            b: dict[str, Any] = {"class": self.backend.class_path}
            if self.backend.init_method:
                b["init_method"] = self.backend.init_method
            if self.backend.init_options:
                b["init_options"] = list(self.backend.init_options)
            if self.backend.stateless:
                b["stateless"] = True
            out["backend"] = b
        out["limits"] = self.limits.to_dict()
        out["tools"] = [copy.deepcopy(t) for t in self.tools]
        return out


@functools.lru_cache(maxsize=1)
def meta_schema() -> dict:
    return json.loads(META_SCHEMA_PATH.read_text())


@functools.lru_cache(maxsize=1)
def _meta_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(meta_schema())


def json_path(parts: Iterable[Any]) -> str:
    """``["tools", 3, "function"]`` → ``$.tools[3].function``."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


# Fix hints per failing JSON Schema keyword: what the user should do.
_FIXES = {
    "required": "add the missing field",
    "additionalProperties": "remove the unknown field or correct its spelling (see tool_envs/README.md)",
    "type": "give a value of the expected type",
    "const": "use the only allowed value",
    "enum": "use one of the allowed values",
    "pattern": "use only the allowed characters",
    "minItems": "add at least one item",
    "minimum": "use a larger value",
    "exclusiveMinimum": "use a positive value",
    "uniqueItems": "remove the duplicates",
}


def _read_file(path: pathlib.Path) -> Any:
    if not path.is_file():
        raise SchemaError(str(path), "$", "file not found", "pass an existing .yaml/.yml/.json file or a built-in name (see `python -m tool_envs list`)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            return json.loads(text)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)  # noqa: S506 - safe loader only
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SchemaError(str(path), "$", f"not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e})", "fix the syntax") from None


def load_spec(path: str | pathlib.Path, check_backend: bool = True) -> EnvSpec:
    """Read and validate one schema file (``check_backend``: import the backend and match it to the tools)."""
    path = pathlib.Path(path)
    if path.suffix not in SCHEMA_SUFFIXES:
        raise SchemaError(str(path), "$", f"unsupported file suffix {path.suffix!r}", "use .yaml, .yml or .json")
    return spec_from_mapping(_read_file(path), source=str(path), check_backend=check_backend,
                             base_dir=path.resolve().parent)


def spec_from_mapping(data: Any, source: str = "<mapping>", check_backend: bool = True,
                      base_dir: str | pathlib.Path | None = None) -> EnvSpec:
    """Validate a schema-file mapping and build an :class:`EnvSpec` (errors name ``source``).

    ``base_dir`` is where a backend module next to the schema file is looked for (the file's folder when
    loaded with :func:`load_spec`).
    """
    if not isinstance(data, dict):
        raise SchemaError(source, "$", f"top level is {type(data).__name__}, not a mapping", "write `name:`, `tools:` ... at the top level")
    errors = sorted(_meta_validator().iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        e = errors[0]
        parts = list(e.absolute_path)
        if e.validator == "required":
            missing = e.message.split("'")[1] if "'" in e.message else ""
            parts.append(missing)
            raise SchemaError(source, json_path(parts), "required field is missing", _FIXES["required"])
        if e.validator == "additionalProperties":
            extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            raise SchemaError(source, json_path(parts + extra[:1]), "unknown field", _FIXES["additionalProperties"])
        raise SchemaError(source, json_path(parts), e.message, _FIXES.get(str(e.validator), "see tool_envs/README.md for the format"))

    tools = []
    seen: dict[str, int] = {}
    for i, tool in enumerate(data["tools"]):
        fn = tool["function"]
        where = ["tools", i, "function"]
        if fn["name"] in seen:
            raise SchemaError(source, json_path(where + ["name"]), f"duplicate tool name {fn['name']!r} (also tools[{seen[fn['name']]}])", "give every tool a unique name")
        seen[fn["name"]] = i
        params = fn["parameters"]
        try:
            jsonschema.Draft202012Validator.check_schema(params)
        except jsonschema.SchemaError as e:
            raise SchemaError(source, json_path(where + ["parameters"] + list(e.path)), f"not a valid JSON Schema: {e.message}", "write the parameters as JSON Schema (types: object, string, integer, number, boolean, array, null)") from None
        props = params.get("properties", {})
        for r in params.get("required", []):
            if r not in props:
                raise SchemaError(source, json_path(where + ["parameters", "required"]), f"required parameter {r!r} is not declared in properties", f"add `{r}` under properties or drop it from required")
        tools.append(copy.deepcopy(tool))

    backend = None
    if "backend" in data:
        b = data["backend"]
        backend = BackendSpec(
            class_path=b["class"],
            init_method=b.get("init_method"),
            init_options=tuple(b.get("init_options", ())),
            stateless=bool(b.get("stateless", False)),
            base_dir=str(base_dir) if base_dir is not None else None,
        )
        if check_backend:
            problems = backend_problems(backend, tools, source)
            if problems:
                raise problems[0]
    return EnvSpec(
        name=data["name"],
        tools=tuple(tools),
        description=data.get("description", ""),
        backend=backend,
        limits=Limits.from_mapping(data.get("limits")),
        source=source,
        argument_checking=data.get("argument_checking", "coerce"),
        isolation=data.get("isolation", "process"),
        generator=data.get("generator"),
        hook=data.get("hook"),
        base_dir=str(base_dir) if base_dir is not None else None,
    )


# --- backends: import (also from the schema file's folder) and match to the tools ----------------------

#: Package under which backend modules found next to a schema file are imported. Its subpackage
#: ``d<hex of the folder path>`` has that folder as its ``__path__``, so any process (a worker process
#: included) can import such a module by name, and two environments' ``backend.py`` never collide.
LOCAL_PACKAGE = "_tool_envs_local"


def local_package(folder: str | pathlib.Path) -> str:
    """The package name whose modules are the files of ``folder``."""
    return f"{LOCAL_PACKAGE}.d{os.fsencode(str(folder)).hex()}"


class _LocalFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`LOCAL_PACKAGE` and its per-folder packages (namespace packages over one folder)."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ARG002 - importlib's signature
        if fullname == LOCAL_PACKAGE:
            folders: list[str] = []
        else:
            head, _, tail = fullname.partition(".")
            if head != LOCAL_PACKAGE or "." in tail or not tail.startswith("d"):
                return None
            try:
                folder = os.fsdecode(bytes.fromhex(tail[1:]))
            except ValueError:
                return None
            if not os.path.isdir(folder):
                return None
            folders = [folder]
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = folders
        return spec


if not any(isinstance(f, _LocalFinder) for f in sys.meta_path):
    sys.meta_path.append(_LocalFinder())


def _local_module(module_name: str, base_dir: str | None) -> str | None:
    if not base_dir:
        return None
    first = module_name.split(".", 1)[0]
    folder = pathlib.Path(base_dir)
    if (folder / f"{first}.py").is_file() or (folder / first / "__init__.py").is_file():
        return f"{local_package(folder)}.{module_name}"
    return None


@functools.lru_cache(maxsize=None)
def import_backend_class(class_path: str, base_dir: str | None = None) -> type:
    """Import ``package.module.Class``; a first module that is a file (or package) in ``base_dir`` is
    imported from there (as a module of :func:`local_package`), else through the normal import system."""
    module_name, cls_name = class_path.rsplit(".", 1)
    module = importlib.import_module(_local_module(module_name, base_dir) or module_name)
    return getattr(module, cls_name)


def import_entry_point(ref: str, base_dir: str | None = None) -> Any:
    """``module:attribute`` imported like a backend class (a module next to the schema file first)."""
    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(_local_module(module_name, base_dir) or module_name), attr)


def import_generator(spec: EnvSpec):
    """The task generator the schema file registers (``generator: module:function``), called as
    ``fn(n, seed=..., split=..., **options)``."""
    if not spec.generator:
        raise ValueError(f"environment {spec.name!r} ({spec.source}) registers no task generator; add "
                         "`generator: module:function` to its schema file, or give a JSONL file of tasks")
    return import_entry_point(spec.generator, spec.base_dir)


def _method_params(cls: type, name: str) -> list[inspect.Parameter] | None:
    """Parameters a call passes to ``cls().name`` (``self`` dropped), or None when unknowable."""
    try:
        params = list(inspect.signature(getattr(cls, name)).parameters.values())
    except (TypeError, ValueError):
        return None
    if not isinstance(inspect.getattr_static(cls, name), (staticmethod, classmethod)):
        params = params[1:]
    return params


def backend_problems(backend: BackendSpec, tools: list[dict], source: str) -> list[SchemaError]:
    """Every mismatch between the backend class and the tools (empty when they fit).

    Checks that the class imports, that every tool is a public method, and that each tool's parameters
    match the method's signature: a property the method does not accept, or a required method parameter
    the schema lacks or leaves optional, would make every such call fail and blame the model for it.
    """
    try:
        cls = backend.load_class()
    except Exception as e:  # noqa: BLE001 - importing user code can raise anything; report it as a schema problem
        where = f" (looked in {backend.base_dir}, next to the schema file, then on sys.path)" if backend.base_dir else ""
        return [SchemaError(source, "$.backend.class", f"cannot import {backend.class_path!r}{where}: {type(e).__name__}: {e}",
                            "put the module next to the schema file (e.g. backend.py with `class: backend.MyApp`), "
                            "or install your package and give its dotted path, e.g. mypkg.mymodule.MyApp")]
    if not isinstance(cls, type):
        return [SchemaError(source, "$.backend.class", f"{backend.class_path!r} is not a class", "point at a class, not a function or module")]
    problems = []
    if backend.init_method and not backend.stateless and not callable(getattr(cls, backend.init_method, None)):
        problems.append(SchemaError(source, "$.backend.init_method", f"{cls.__name__} has no method {backend.init_method!r}", "name an existing method or drop init_method"))
    for i, tool in enumerate(tools):
        fn = tool["function"]
        name = fn["name"]
        where = f"$.tools[{i}].function"
        if name.startswith("_") or not callable(getattr(cls, name, None)):
            problems.append(SchemaError(source, f"{where}.name", f"backend {cls.__name__} has no public method {name!r}", f"add a method `{name}` to {cls.__name__} or remove the tool"))
            continue
        params = _method_params(cls, name)
        if params is None:
            continue
        method = f"{cls.__name__}.{name}"
        schema = fn.get("parameters") or {}
        props = list(schema.get("properties") or {})
        required = set(schema.get("required") or [])
        by_kw = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        any_kw = any(p.kind == p.VAR_KEYWORD for p in params)
        for prop in props:
            if prop not in by_kw and not any_kw:
                problems.append(SchemaError(source, f"{where}.parameters.properties.{prop}",
                                            f"{method} does not accept a parameter {prop!r} (it takes: {', '.join(by_kw) or 'nothing'})",
                                            f"rename the property to the method's parameter name, or add `{prop}` to {method}"))
        for p in params:
            if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.name not in props:
                problems.append(SchemaError(source, f"{where}.parameters.properties",
                                            f"required parameter {p.name!r} of {method} is not in the schema",
                                            f"add `{p.name}` under properties and required, or give it a default in {method}"))
            elif p.name not in required:
                problems.append(SchemaError(source, f"{where}.parameters.required",
                                            f"parameter {p.name!r} of {method} has no default but the schema does not require it",
                                            f"add `{p.name}` to required, or give it a default in {method}"))
    return problems
