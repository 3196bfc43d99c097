"""ToolEnv (a set of tools, possibly composed from several schema files) and Episode (its isolated state).

An episode owns fresh backend instances, so concurrent episodes never share state. ``execute`` never
raises for anything a model can send: unknown tools, bad arguments, exceptions, timeouts and oversized
outputs all come back as :class:`~tool_envs.types.ToolResult` values.
"""
from __future__ import annotations

import copy
import datetime
import enum
import functools
import inspect
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Iterable, Mapping, Sequence

from tool_envs.executor import (
    ERROR_PREFIX,
    ArgumentError,
    ToolValidator,
    call_runner,
    fresh_copy,
    stringify_result,
    truncate,
)
from tool_envs.parsing import POSITIONAL_ARGS_KEY, ToolCallParseError, bind_positional
from tool_envs.schema import EnvSpec, Limits
from tool_envs.types import ToolCall, ToolResult

MAX_LISTED_TOOLS = 30  # an unknown-tool error lists at most this many names (keeps the message short)


@dataclass(frozen=True)
class _TaskView:
    """The parts of a task an episode needs."""

    initial_state: Mapping[str, Any]
    long_context: bool
    hidden: frozenset[str]


def _task_view(task: Any) -> _TaskView:
    if task is None:
        return _TaskView({}, False, frozenset())
    if isinstance(task, Mapping):
        get = task.get
    else:
        def get(k, default=None):
            return getattr(task, k, default)
    initial = get("initial_state", None) or {}
    missed = get("missed_functions", None) or {}
    hidden = frozenset(n for names in missed.values() for n in names)
    return _TaskView(initial, bool(get("long_context", False)), hidden)


@functools.lru_cache(maxsize=None)
def _signature_names(cls: type, method: str) -> list[str]:
    params = list(inspect.signature(getattr(cls, method)).parameters.values())[1:]  # drop self
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _merge_limits(specs: Sequence[EnvSpec]) -> Limits:
    """The strictest limits of the composed environments (None timeout = unlimited)."""
    ls = [s.limits for s in specs]
    timeouts = [l.call_timeout_s for l in ls if l.call_timeout_s is not None]
    return Limits(
        max_turns=min(l.max_turns for l in ls),
        max_calls_per_turn=min(l.max_calls_per_turn for l in ls),
        call_timeout_s=min(timeouts) if timeouts else None,
        max_output_chars=min(l.max_output_chars for l in ls),
    )


class ToolEnv:
    """Tools from one or more :class:`EnvSpec` s; ``new_episode`` gives isolated state.

    Attributes:
        name: Registry name, or the composed names joined by ``+``.
        description: Human-readable description (joined for composed environments).
        tools: OpenAI function schemas ``{"type": "function", "function": {...}}`` of every tool.
        limits: Effective :class:`~tool_envs.schema.Limits`.
    """

    def __init__(self, specs: EnvSpec | Sequence[EnvSpec], limits: Limits | None = None, name: str | None = None):
        specs = [specs] if isinstance(specs, EnvSpec) else list(specs)
        if not specs:
            raise ValueError("ToolEnv needs at least one EnvSpec")
        self.specs = tuple(specs)
        self.name = name or "+".join(s.name for s in specs)
        self.description = "\n".join(s.description for s in specs if s.description)
        self.limits = limits or _merge_limits(specs)
        owner: dict[str, int] = {}
        for i, s in enumerate(specs):
            for n in s.tool_names:
                if n in owner:
                    raise ValueError(f"tool {n!r} is defined by both {specs[owner[n]].source} and {s.source}; composed environments need unique tool names")
                owner[n] = i
        self._owner = owner
        self._validators = {
            t["function"]["name"]: ToolValidator(t["function"]["name"], t["function"].get("parameters", {"type": "object"}), s.argument_checking)
            for s in specs
            for t in s.tools
        }
        self.tools: list[dict] = [t for s in specs for t in s.tools]
        self._tool_by_name = {t["function"]["name"]: t for t in self.tools}

    @property
    def tool_names(self) -> list[str]:
        return list(self._tool_by_name)

    def _param_order(self, name: str, instance: Any) -> list[str]:
        """Parameter names in positional order: the backend method's signature, else the schema's."""
        if instance is not None:
            return _signature_names(type(instance), name)
        return list((self._tool_by_name[name]["function"].get("parameters") or {}).get("properties") or {})

    def tool_schema(self, name: str) -> dict:
        return self._tool_by_name[name]

    def new_episode(self, task: Any = None, block_hidden: bool = False) -> "Episode":
        """A fresh episode; ``task`` (a :class:`~tool_envs.tasks.Task` or a mapping with the same fields)
        gives ``initial_state`` (keyed by environment name or backend class name), ``long_context`` and
        ``missed_functions`` (hidden until :meth:`Episode.reveal`).

        ``block_hidden``: refuse calls to hidden tools as unknown. Default False is BFCL's behaviour: a
        hidden tool is not *shown* (:attr:`Episode.tools`) but runs if the model guesses its name (one
        BFCL ground truth, multi_turn_miss_func_49, even relies on that).
        """
        return Episode(self, _task_view(task), block_hidden)

    def __repr__(self) -> str:
        return f"ToolEnv({self.name!r}, {len(self.tools)} tools)"


class Episode:
    """One rollout's environment state. Not thread-safe itself; make one episode per concurrent rollout."""

    def __init__(self, env: ToolEnv, view: _TaskView, block_hidden: bool = False):
        self.env = env
        self.block_hidden = block_hidden
        self.limits = env.limits
        self.backends: dict[str, Any] = {}
        self._instances: list[Any] = []
        self._replay: list[list[dict] | None] = []
        for spec in env.specs:
            init_state = view.initial_state.get(spec.name)
            if init_state is None and spec.backend is not None:
                init_state = view.initial_state.get(spec.backend.class_name)
            if spec.backend is None:
                self._instances.append(None)
                self._replay.append(_replay_records(init_state, spec))
                continue
            instance = spec.backend.load_class()()
            b = spec.backend
            if b.init_method and not b.stateless:
                kwargs = {"long_context": view.long_context} if "long_context" in b.init_options else {}
                getattr(instance, b.init_method)(copy.deepcopy(init_state or {}), **kwargs)
            key = b.class_name if b.class_name not in self.backends else spec.name
            self.backends[key] = instance
            self._instances.append(instance)
            self._replay.append(None)
        self._hidden = set(view.hidden) & set(env._owner)
        self.history: list[tuple[ToolCall, ToolResult]] = []
        self.broken: str | None = None

    # --- tool visibility (BFCL miss_func: functions held out until a later turn) ---------------------

    @property
    def hidden(self) -> frozenset[str]:
        return frozenset(self._hidden)

    def hide(self, names: Iterable[str]) -> None:
        self._hidden.update(n for n in names if n in self.env._owner)

    def reveal(self, names: Iterable[str] | None = None) -> list[str]:
        """Make held-out tools callable and visible; ``None`` reveals all. Returns the names revealed."""
        names = list(self._hidden) if names is None else [n for n in names if n in self._hidden]
        self._hidden.difference_update(names)
        return names

    @property
    def tools(self) -> list[dict]:
        """Schemas of the currently visible tools (what the model should be shown)."""
        return [t for t in self.env.tools if t["function"]["name"] not in self._hidden]

    # --- execution -----------------------------------------------------------------------------------

    def execute(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run the calls of one assistant message in order; one result per call, never an exception.

        With ``call_timeout_s`` set, the whole message runs as one job on a worker thread (one hand-off
        per message, not per call) and every call gets its own deadline.
        """
        calls = list(calls)
        limit = self.limits.max_calls_per_turn
        run, rest = calls[:limit], calls[limit:]
        timeout = self.limits.call_timeout_s
        if timeout and run and not self.broken and any(i is not None for i in self._instances):
            done, hung = call_runner().run_batch([functools.partial(self._safe_one, c) for c in run], timeout)
            results = list(done)
            if hung is not None:
                name = str(getattr(run[hung], "name", "?"))
                self.broken = f"an earlier call to {name!r} timed out; this episode can no longer run tools"
                results.append(ToolResult(name, f"{ERROR_PREFIX}the call did not finish within {timeout:g} s", error=True))
                results += [ToolResult(str(getattr(c, "name", "?")), f"{ERROR_PREFIX}{self.broken}", error=True) for c in run[hung + 1:]]
        else:
            results = [self._safe_one(c) for c in run]
        results += [
            ToolResult(str(getattr(c, "name", "?")), f"{ERROR_PREFIX}call not executed: at most {limit} calls per message", error=True)
            for c in rest
        ]
        self.history.extend(zip(calls, results))
        return results

    def _safe_one(self, call: ToolCall) -> ToolResult:
        try:
            return self._execute_one(call)
        except Exception as e:  # noqa: BLE001 - last line of defence (e.g. absurdly deep arguments)
            return ToolResult(str(getattr(call, "name", "?")), f"{ERROR_PREFIX}the call could not be processed ({type(e).__name__})", error=True)

    def _execute_one(self, call: ToolCall) -> ToolResult:
        name = getattr(call, "name", None)
        if not isinstance(name, str):
            return ToolResult(str(name), f"{ERROR_PREFIX}a tool call needs a string name", error=True)
        if self.broken:
            return ToolResult(name, f"{ERROR_PREFIX}{self.broken}", error=True)
        idx = self.env._owner.get(name)
        if idx is None or (self.block_hidden and name in self._hidden):
            return ToolResult(name, f"{ERROR_PREFIX}unknown tool {name!r}; available tools: {self._available()}", error=True)
        instance = self._instances[idx]
        arguments = call.arguments
        try:
            if isinstance(arguments, Mapping) and POSITIONAL_ARGS_KEY in arguments:
                arguments = bind_positional(call, self.env._param_order(name, instance)).arguments
            args = fresh_copy(self.env._validators[name].check(arguments))
        except (ArgumentError, ToolCallParseError) as e:
            return ToolResult(name, f"{ERROR_PREFIX}{e}", error=True)
        if instance is None:
            content, error = self._replay_lookup(idx, name, args)
        else:
            try:
                content, error = stringify_result(getattr(instance, name)(**args)), False
            except Exception as e:  # noqa: BLE001 - any backend failure is the model's feedback
                content, error = f"{ERROR_PREFIX}{e}", True
        content, cut = truncate(content, self.limits.max_output_chars)
        return ToolResult(name, content, error=error, truncated=cut)

    def _available(self) -> str:
        names = [n for n in self.env._owner if not (self.block_hidden and n in self._hidden)]
        more = len(names) - MAX_LISTED_TOOLS
        return ", ".join(names[:MAX_LISTED_TOOLS]) + (f" (+{more} more)" if more > 0 else "")

    def _replay_lookup(self, idx: int, name: str, args: dict) -> tuple[str, bool]:
        records = self._replay[idx] or []
        fallback = None
        for r in records:
            if r["name"] != name:
                continue
            if "arguments" not in r:
                fallback = fallback or r
            elif r["arguments"] == args:
                return r["content"], bool(r.get("error", False))
        if fallback is not None:
            return fallback["content"], bool(fallback.get("error", False))
        return f"{ERROR_PREFIX}no recorded output for {name}({args}) in this task", True

    # --- state ---------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-able snapshot of every backend's public attributes, keyed like :attr:`backends`."""
        return {k: public_state(v) for k, v in self.backends.items()}


def _replay_records(init_state: Any, spec: EnvSpec) -> list[dict]:
    """A record/replay environment's initial state: ``[{"name", "arguments"?, "content", "error"?}]``
    (or ``{"outputs": [...]}``). Records without ``arguments`` answer any call of that tool."""
    if init_state is None:
        return []
    records = init_state.get("outputs") if isinstance(init_state, Mapping) else init_state
    if not isinstance(records, list) or not all(isinstance(r, Mapping) and isinstance(r.get("name"), str) and "content" in r for r in records):
        raise ValueError(f"initial state of record/replay environment {spec.name!r} must be a list of {{'name', 'content', 'arguments'?}} records (or {{'outputs': [...]}})")
    return [dict(r, content=r["content"] if isinstance(r["content"], str) else stringify_result(r["content"])) for r in records]


def public_state(obj: Any) -> Any:
    """JSON-able view of an object's public state: attributes not starting with ``_``, recursively.

    Back-references to an enclosing object (e.g. a directory's ``parent``) are left out, sets become
    sorted lists, dates ISO strings and anything else opaque its ``str()``.
    """
    return _jsonable(obj, ())


def _jsonable(obj: Any, stack: tuple[int, ...]) -> Any:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else str(obj)
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value, stack)
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if id(obj) in stack:
        return _CYCLE
    stack = stack + (id(obj),)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            val = _jsonable(v, stack)
            if val is not _CYCLE:
                out[k if isinstance(k, str) else str(k)] = val
        return out
    if isinstance(obj, (list, tuple)):
        return [v for v in (_jsonable(x, stack) for x in obj) if v is not _CYCLE]
    if isinstance(obj, (set, frozenset)):
        return sorted((_jsonable(x, stack) for x in obj), key=repr)
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable({f.name: getattr(obj, f.name) for f in fields(obj) if not f.name.startswith("_")}, stack)
    if hasattr(obj, "__dict__") and not callable(obj):
        return _jsonable({k: v for k, v in vars(obj).items() if not k.startswith("_")}, stack)
    return str(obj)


class _Cycle:
    pass


_CYCLE = _Cycle()
