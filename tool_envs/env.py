# Over 400 lines on purpose: ToolEnv and Episode are one contract (tools, isolation, snapshots, held-out tools); public_state at the end is the JSON view of that episode state.
"""ToolEnv (a set of tools, possibly composed from several schema files) and Episode (its isolated state).

An episode owns fresh backend instances, so concurrent episodes never share state. ``execute`` never
raises for anything a model can send: unknown tools, bad arguments, exceptions, timeouts and oversized
outputs all come back as :class:`~tool_envs.types.ToolResult` values.
"""
from __future__ import annotations

import asyncio
import datetime
import enum
import functools
import inspect
import pickle
import time
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Iterable, Mapping, Sequence

from tool_envs.executor import (
    ERROR_PREFIX,
    ISOLATIONS,
    WATCHDOG,
    ArgumentError,
    ToolValidator,
    copy_state,
    executor_config,
    fresh_copy,
    run_in_thread,
    stringify_result,
    truncate,
)
from tool_envs.procpool import CallLimits, RunOutcome, load_snapshot, process_pool, public_snapshot
from tool_envs.parsing import POSITIONAL_ARGS_KEY, ToolCallParseError, bind_positional
from tool_envs.hooks import GENERIC_HOOK, EnvHook
from tool_envs.schema import EnvSpec, Limits, import_entry_point
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
    """The strictest limits of the composed environments (None = unlimited)."""
    ls = [s.limits for s in specs]

    def strictest(name: str) -> Any:
        values = [getattr(l, name) for l in ls if getattr(l, name) is not None]
        return min(values) if values else None

    return Limits(
        max_turns=min(l.max_turns for l in ls),
        max_calls_per_turn=min(l.max_calls_per_turn for l in ls),
        call_timeout_s=strictest("call_timeout_s"),
        max_output_chars=min(l.max_output_chars for l in ls),
        cpu_time_s=strictest("cpu_time_s"),
        memory_mb=strictest("memory_mb"),
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
        #: ``process`` when any composed backend asks for it (the strictest wins), else ``thread``.
        self.isolation = "process" if any(s.backend is not None and s.isolation == "process" for s in specs) else "thread"
        keys: list[tuple[str, int]] = []
        for i, s in enumerate(specs):
            if s.backend is not None:
                taken = {k for k, _ in keys}
                keys.append((s.backend.class_name if s.backend.class_name not in taken else s.name, i))
        #: ``(key, spec index)`` of every backend: the keys of :attr:`Episode.backends` and ``Episode.state()``.
        self.backend_keys: tuple[tuple[str, int], ...] = tuple(keys)

    @property
    def tool_names(self) -> list[str]:
        return list(self._tool_by_name)

    @functools.cached_property
    def hook(self) -> EnvHook:
        """The hook the schema files name (``hook: module:attribute``); composed ones must agree."""
        refs = {(s.hook, s.base_dir) for s in self.specs if s.hook}
        if len({r for r, _ in refs}) > 1:
            raise ValueError(f"environment {self.name!r} composes schema files with different hooks "
                             f"{sorted(r for r, _ in refs)}; compose environments of one family")
        return import_entry_point(*next(iter(refs))) if refs else GENERIC_HOOK

    def _param_order(self, name: str, idx: int) -> list[str]:
        """Parameter names in positional order: the backend method's signature, else the schema's."""
        backend = self.specs[idx].backend
        if backend is not None:
            return _signature_names(backend.load_class(), name)
        return list((self._tool_by_name[name]["function"].get("parameters") or {}).get("properties") or {})

    def backends_from_snapshot(self, snapshot: bytes) -> dict[str, Any]:
        """Backend instances (keyed like :attr:`Episode.backends`) from :meth:`Episode.snapshot` bytes."""
        live = load_snapshot(snapshot)
        return {key: live[i] for key, i in self.backend_keys}

    @functools.cached_property
    def _backend_modules(self) -> list[str]:
        return [s.backend.load_class().__module__ for s in self.specs if s.backend is not None]

    def _process_pool(self):
        """The shared worker pool, with this environment's backend modules imported in its zygote (so
        workers forked later start with them loaded)."""
        pool = process_pool(executor_config().process_workers)
        pool.preload(self._backend_modules)
        return pool

    async def _aprocess_pool(self):
        pool = process_pool(executor_config().process_workers)
        if pool.missing_preloads(self._backend_modules):  # the first time: talk to the zygote off the loop
            await asyncio.get_running_loop().run_in_executor(None, pool.preload, self._backend_modules)
        return pool

    def tool_schema(self, name: str) -> dict:
        return self._tool_by_name[name]

    def new_episode(self, task: Any = None, block_hidden: bool = False, isolation: str | None = None) -> "Episode":
        """A fresh episode; ``task`` (a :class:`~tool_envs.tasks.Task` or a mapping with the same fields)
        gives ``initial_state`` (keyed by environment name or backend class name), ``long_context`` and
        ``missed_functions`` (hidden until :meth:`Episode.reveal`).

        ``block_hidden``: refuse calls to hidden tools as unknown. Default False is BFCL's behaviour: a
        hidden tool is not *shown* (:attr:`Episode.tools`) but runs if the model guesses its name (one
        BFCL ground truth, multi_turn_miss_func_49, even relies on that).

        ``isolation``: ``"process"`` or ``"thread"`` for this episode (default: the executor's override, else
        the environment's :attr:`isolation`). Trusted calls, such as a task's own ground truth, can use
        ``"thread"`` to skip the worker round trip.
        """
        return Episode(self, _task_view(task), block_hidden, isolation)

    def __repr__(self) -> str:
        return f"ToolEnv({self.name!r}, {len(self.tools)} tools)"


class Episode:
    """One rollout's environment state. Not thread-safe itself; make one episode per concurrent rollout.

    ``isolation`` (the environment's unless given; see :class:`~tool_envs.executor.ExecutorConfig` for the
    process-wide override) decides where backend code runs: ``"process"`` in a worker process that is
    killed when a call overruns, ``"thread"`` in this process. The backend instances are built here in
    both cases (the task's initial state is trusted data); in process isolation their pickled state then
    travels with every request to whichever worker is idle.
    """

    def __init__(self, env: ToolEnv, view: _TaskView, block_hidden: bool = False, isolation: str | None = None):
        self.env = env
        self.block_hidden = block_hidden
        self.limits = env.limits
        self.isolation = resolve_isolation(env, isolation)
        self._instances: list[Any] | None = []  # live backends (None in process isolation once state is a blob)
        self._blob: bytes | None = None  # pickled ``_instances`` (process isolation), the source of truth when set
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
                getattr(instance, b.init_method)(copy_state(init_state or {}), **kwargs)
            self._instances.append(instance)
            self._replay.append(None)
        self._hidden = set(view.hidden) & set(env._owner)
        self.history: list[tuple[ToolCall, ToolResult]] = []
        self.broken: str | None = None
        # The worker pool serves older episodes first when every worker is busy (see tool_envs.procpool).
        self.created = time.monotonic()

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
        """Run the calls of one assistant message in order, blocking; one result per call, never an exception.

        Thread isolation runs them inline in this thread (the watchdog interrupts a call at its timeout);
        process isolation sends them to a worker process in one request. Async code should use
        :meth:`aexecute`, which never blocks the event loop.
        """
        calls, items, rest = self._plan(calls)
        if self.isolation == "process" and self._needs_backend(items):
            results = self._apply_process(items, self._pool_run(items))
        else:
            results = self._run_inline(items)
        return self._finish(calls, results, rest)

    async def aexecute(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """:meth:`execute` for async callers: the calls run on a pool thread or a worker process while the
        event loop serves other episodes, so N episodes whose calls take t seconds finish in about t."""
        calls, items, rest = self._plan(calls)
        if not self._needs_backend(items):
            results = self._run_inline(items)
        elif self.isolation == "process":
            results = self._apply_process(items, await self._pool_arun(items))
        else:
            pending = [it for it in items if isinstance(it, _Pending)]
            if self.broken:
                done, hung = [], None
            else:
                done, hung = await run_in_thread([functools.partial(self._call, p) for p in pending], self.limits.call_timeout_s)
            results = self._apply_thread(items, done, hung)
        return self._finish(calls, results, rest)

    def execute_turns(self, turns: Sequence[Sequence[Sequence[ToolCall]]]) -> tuple[list, list]:
        """Replay ``[turn][step][call]`` (no model in between): results per ``[turn][step]`` and
        :meth:`snapshot` after each turn.

        In process isolation all of it is one worker request (snapshots included), which is what a reward
        that re-checks call lists needs; if a call there is stopped, the turns are run again one message at a
        time so the stopped call gets the usual treatment.
        """
        if self.isolation == "process" and not self.broken:
            plans = [[self._plan(step) for step in turn] for turn in turns]
            flat: list = []
            for turn in plans:
                for _, items, _ in turn:
                    flat.extend((p.idx, p.name, p.args) for p in items if isinstance(p, _Pending))
                flat.append(None)
            req = self._request([])
            if not isinstance(req, str):
                pool = self.env._process_pool()
                out = pool.run(req[0], flat, *self._pool_terms())
                if out.state is not None:
                    self._set_blob(out.state)
                    done = iter(out.results)
                    results = []
                    for turn in plans:
                        row = []
                        for calls, items, rest in turn:
                            got = [it if isinstance(it, ToolResult) else ToolResult(it.name, *next(done)) for it in items]
                            row.append(self._finish(calls, got, rest))
                        results.append(row)
                    return results, list(out.snapshots)
        results, snapshots = [], []
        for turn in turns:
            results.append([self.execute(step) for step in turn])
            snapshots.append(self.snapshot())
        return results, snapshots

    def _plan(self, calls: Sequence[ToolCall]) -> tuple[list, list, list]:
        calls = list(calls)
        limit = self.limits.max_calls_per_turn
        run, rest = calls[:limit], calls[limit:]
        return calls, [self._safe_prepare(c) for c in run], rest

    def _finish(self, calls: list, results: list[ToolResult], rest: list) -> list[ToolResult]:
        limit = self.limits.max_calls_per_turn
        results = results + [
            ToolResult(_name_of(c), f"{ERROR_PREFIX}call not executed: at most {limit} calls per message", error=True)
            for c in rest
        ]
        self.history.extend(zip(calls, results))
        return results

    @staticmethod
    def _needs_backend(items: list) -> bool:
        return any(isinstance(it, _Pending) for it in items)

    def _safe_prepare(self, call: ToolCall) -> "ToolResult | _Pending":
        try:
            return self._prepare(call)
        except Exception as e:  # noqa: BLE001 - last line of defence (e.g. absurdly deep arguments)
            return ToolResult(_name_of(call), f"{ERROR_PREFIX}the call could not be processed ({type(e).__name__})", error=True)

    def _prepare(self, call: ToolCall) -> "ToolResult | _Pending":
        """Everything that needs no backend: name, visibility, arguments; replay lookups are answered here."""
        name = getattr(call, "name", None)
        if not isinstance(name, str):
            return ToolResult(str(name), f"{ERROR_PREFIX}a tool call needs a string name", error=True)
        idx = self.env._owner.get(name)
        if idx is None or (self.block_hidden and name in self._hidden):
            return ToolResult(name, f"{ERROR_PREFIX}unknown tool {name!r}; available tools: {self._available()}", error=True)
        arguments = call.arguments
        try:
            if isinstance(arguments, Mapping) and POSITIONAL_ARGS_KEY in arguments:
                arguments = bind_positional(call, self.env._param_order(name, idx)).arguments
            args = fresh_copy(self.env._validators[name].check(arguments))
        except (ArgumentError, ToolCallParseError) as e:
            return ToolResult(name, f"{ERROR_PREFIX}{e}", error=True)
        if self._replay[idx] is not None:
            content, error = self._replay_lookup(idx, name, args)
            content, cut = truncate(content, self.limits.max_output_chars)
            return ToolResult(name, content, error=error, truncated=cut)
        return _Pending(idx, name, args)

    def _call(self, p: "_Pending") -> ToolResult:
        """Run one prepared call on the live backend (thread isolation)."""
        try:
            content, error = stringify_result(getattr(self._live()[p.idx], p.name)(**p.args)), False
        except Exception as e:  # noqa: BLE001 - any backend failure is the model's feedback
            try:
                content = f"{ERROR_PREFIX}{e}"
            except Exception as e2:  # noqa: BLE001 - an exception whose str() fails
                content = f"{ERROR_PREFIX}the call could not be processed ({type(e2).__name__})"
            error = True
        content, cut = truncate(content, self.limits.max_output_chars)
        return ToolResult(p.name, content, error=error, truncated=cut)

    # --- thread isolation ----------------------------------------------------------------------------

    def _run_inline(self, items: list) -> list[ToolResult]:
        timeout = self.limits.call_timeout_s
        out: list[ToolResult] = []
        for it in items:
            if isinstance(it, ToolResult):
                out.append(it)
            elif self.broken:
                out.append(ToolResult(it.name, f"{ERROR_PREFIX}{self.broken}", error=True))
            elif timeout is None:
                out.append(self._call(it))
            else:
                value, timed_out = WATCHDOG.run(functools.partial(self._call, it), timeout)
                if timed_out:
                    out.append(self._thread_timed_out(it.name))
                else:
                    out.append(value)
        return out

    def _apply_thread(self, items: list, done: list[ToolResult], hung: int | None) -> list[ToolResult]:
        out: list[ToolResult] = []
        k = 0
        for it in items:
            if isinstance(it, ToolResult):
                out.append(it)
                continue
            if k < len(done):
                out.append(done[k])
            elif k == hung:
                out.append(self._thread_timed_out(it.name))
            else:
                out.append(ToolResult(it.name, f"{ERROR_PREFIX}{self.broken}", error=True))
            k += 1
        return out

    def _thread_timed_out(self, name: str) -> ToolResult:
        # Interrupting Python code mid-way can leave the backend half-updated: stop using it.
        self.broken = f"an earlier call to {name!r} timed out; this episode can no longer run tools"
        return ToolResult(name, f"{ERROR_PREFIX}the call did not finish within {self.limits.call_timeout_s:g} s", error=True)

    # --- process isolation ---------------------------------------------------------------------------

    def _pool_terms(self) -> tuple[CallLimits, float, float]:
        """What every pool request of this episode carries: its limits, its deadline, and its place in line
        (the episode's creation time: the oldest episode is served first, so none starves)."""
        return self._call_limits(), self.limits.call_timeout_s, self.created

    def _call_limits(self) -> CallLimits:
        lim = self.limits
        cpu = lim.cpu_time_s if lim.cpu_time_s is not None else lim.call_timeout_s
        return CallLimits(max_output_chars=lim.max_output_chars, cpu_time_s=cpu, memory_mb=lim.memory_mb,
                          max_state_bytes=executor_config().max_state_bytes)

    def _request(self, items: list) -> tuple[bytes, list] | str:
        """The state blob and the worker's call list, or why the episode cannot run tools."""
        if self.broken:
            return self.broken
        try:
            blob = self._state_blob()
        except Exception as e:  # noqa: BLE001 - e.g. a lock or an open file among the backend's attributes
            self.broken = (f"the backend state cannot be sent to a worker process ({type(e).__name__}: {e}); "
                           "make it picklable or use isolation: thread")
            return self.broken
        return blob, [(p.idx, p.name, p.args) for p in items if isinstance(p, _Pending)]

    def _pool_run(self, items: list) -> "RunOutcome | str":
        req = self._request(items)
        if isinstance(req, str):
            return req
        pool = self.env._process_pool()
        out = pool.run(req[0], req[1], *self._pool_terms())
        fix = self._after_failure(req, out)
        if fix is not None:
            self._settle(pool.run(req[0], fix, *self._pool_terms()), out)
        return out

    async def _pool_arun(self, items: list) -> "RunOutcome | str":
        req = self._request(items)
        if isinstance(req, str):
            return req
        pool = await self.env._aprocess_pool()
        out = await pool.arun(req[0], req[1], *self._pool_terms())
        fix = self._after_failure(req, out)
        if fix is not None:
            self._settle(await pool.arun(req[0], fix, *self._pool_terms()), out)
        return out

    def _after_failure(self, req: tuple[bytes, list], out: RunOutcome) -> list | None:
        """Adopt the new state; after a kill, the calls to replay from the old state (None: nothing to do).

        A call that timed out or crashed its worker has no effect: the episode continues from the state
        after the message's earlier calls, rebuilt by replaying them on the state from before the request
        (their results come from that replay too: a killed worker sends nothing back).
        """
        if out.state is not None:
            self._set_blob(out.state)
            return None
        if out.failure == "state":
            self.broken = out.message
            return None
        return req[1][: out.failed_at] or None

    def _settle(self, replay: RunOutcome, out: RunOutcome) -> None:
        if replay.state is not None:
            self._set_blob(replay.state)
            out.results = replay.results
        else:
            self.broken = "the episode's state could not be rebuilt after a stopped call; this episode can no longer run tools"
            out.results = [(f"{ERROR_PREFIX}{self.broken}", True, False)] * out.failed_at

    def _apply_process(self, items: list, out: "RunOutcome | str") -> list[ToolResult]:
        results: list[ToolResult] = []
        k = 0
        for it in items:
            if isinstance(it, ToolResult):
                results.append(it)
                continue
            if isinstance(out, str):
                results.append(ToolResult(it.name, f"{ERROR_PREFIX}{out}", error=True))
            elif k < len(out.results):
                content, error, cut = out.results[k]
                results.append(ToolResult(it.name, content, error=error, truncated=cut))
            elif k == out.failed_at and out.failure == "timeout":
                results.append(ToolResult(it.name, f"{ERROR_PREFIX}the call did not finish within {self.limits.call_timeout_s:g} s "
                                                   "and was stopped; it had no effect", error=True))
            elif k == out.failed_at and out.failure == "crash":
                results.append(ToolResult(it.name, f"{ERROR_PREFIX}the call crashed its worker process (for example it "
                                                   "exceeded a resource limit); it had no effect", error=True))
            elif out.failure == "state":
                results.append(ToolResult(it.name, f"{ERROR_PREFIX}{out.message}", error=True))
            else:
                results.append(ToolResult(it.name, f"{ERROR_PREFIX}call not executed: an earlier call in this message was stopped", error=True))
            k += 1
        return results

    # --- state ---------------------------------------------------------------------------------------

    def _live(self) -> list[Any]:
        if self._instances is None:
            self._instances = pickle.loads(self._blob)
        return self._instances

    def _state_blob(self) -> bytes:
        if self._blob is None:
            self._blob = pickle.dumps(self._instances, pickle.HIGHEST_PROTOCOL)
        return self._blob

    def _set_blob(self, blob: bytes) -> None:
        self._blob, self._instances = blob, None

    @property
    def backends(self) -> dict[str, Any]:
        """The backend instances keyed by class name (or environment name when two share a class), as BFCL's
        ``state_checker`` wants them. In process isolation they are a copy made from the latest state:
        changing them does not change the episode."""
        live = self._live()
        return {key: live[i] for key, i in self.env.backend_keys}

    def snapshot(self) -> bytes | None:
        """The backend state as bytes, for recording (``None`` if it cannot be pickled).

        :meth:`ToolEnv.backends_from_snapshot` turns it back into instances. In process isolation this is
        the state the episode already holds, so recording costs nothing; in-process it is the backends'
        public attributes (what state checks and :meth:`state` read), cheaper than the whole instances.
        """
        try:
            if self.isolation == "process":
                return self._state_blob()
            return public_snapshot(self._live())
        except Exception:  # noqa: BLE001 - unpicklable user state: the reward replays instead
            return None

    def state(self) -> dict[str, Any]:
        """JSON-able snapshot of every backend's public attributes, keyed like :attr:`backends`."""
        return {k: public_state(v) for k, v in self.backends.items()}

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


class _Pending:
    """A call that passed every check and waits for its backend."""

    __slots__ = ("idx", "name", "args")

    def __init__(self, idx: int, name: str, args: dict):
        self.idx, self.name, self.args = idx, name, args


def _name_of(call: Any) -> str:
    return str(getattr(call, "name", "?"))


def resolve_isolation(env: "ToolEnv", requested: str | None = None) -> str:
    """The isolation an episode gets: ``requested``, else the executor's override, else the environment's."""
    choice = requested or executor_config().isolation or env.isolation
    if choice not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, got {choice!r}")
    return choice


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
