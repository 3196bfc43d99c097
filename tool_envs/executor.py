# Over 400 lines on purpose: one call's path (checking, coercion, copy, run, stringify, truncate) reads top to bottom, in the order tool_envs/README.md documents it.
"""Per-call machinery of the executor: argument validation and coercion, timeouts, result strings.

Argument checking is chosen per schema file (``argument_checking``): ``coerce`` (default, below),
``strict`` (validate, never coerce) or ``off`` (pass through; the backend checks, as BFCL does).

Coercion policy (documented in tool_envs/README.md): before validation, *lossless* conversions are applied
where the schema declares a single type: ``"3"``→3 and ``3.0``→3 for ``integer``; ``"2.5"``→2.5 and
``"7"``→7 for ``number``; ``"true"/"false"`` (any case) for ``boolean``; recursively inside arrays and
objects. The converted arguments are then validated against the tool's JSON Schema; if they fail, the call
fails with the most relevant validation error of the arguments as sent. Nothing is ever stringified,
rounded or dropped, and values that are already right are left alone.
"""
from __future__ import annotations

import asyncio
import copy
import ctypes
import json
import math
import os
import queue
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping

import jsonschema
from jsonschema.exceptions import best_match

from tool_envs.schema import json_path

ERROR_PREFIX = "Error during execution: "  # BFCL's prefix for failed calls; kept so results stay comparable
_INT_RE = re.compile(r"[+-]?\d{1,18}")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")


class ArgumentError(ValueError):
    """Arguments do not match the tool's schema; the message is written for the model."""


def stringify_result(value: Any) -> str:
    """Turn a backend's return value into the text the model sees, exactly as BFCL does."""
    if type(value) is str:  # noqa: E721 - BFCL checks the exact type, subclasses go through str()
        return value
    if type(value) is dict:  # noqa: E721
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    note = f"... [truncated {len(text) - limit} characters]"
    return text[: max(0, limit - len(note))] + note, True


def fresh_copy(value: Any) -> Any:
    """Copy JSON-like containers (dict/list/tuple) recursively; other values are shared.

    Backends keep and mutate what they are given (BFCL's post_tweet stores the ``mentions`` list and a
    later ``mention`` appends to it), so a call must never hand over the caller's objects: a task's
    ground-truth calls would otherwise change between episodes. Much cheaper than ``copy.deepcopy``.
    """
    if isinstance(value, dict):
        return {k: fresh_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fresh_copy(v) for v in value]
    return value


_ATOMS = (str, int, float, bool, type(None))


def copy_state(value: Any) -> Any:
    """A deep copy of a task's initial state: JSON values are copied directly (several times faster than
    ``copy.deepcopy``, which matters with one or two episodes per task and step), anything else by
    ``copy.deepcopy``."""
    t = type(value)
    if t is dict:
        return {k: copy_state(v) for k, v in value.items()}
    if t is list:
        return [copy_state(v) for v in value]
    if t in _ATOMS:
        return value
    return copy.deepcopy(value)


def _coerce(value: Any, schema: Any) -> Any:
    if not isinstance(schema, dict):
        return value
    t = schema.get("type")
    if t == "integer":
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value.strip())
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif t == "number":
        if isinstance(value, str):
            s = value.strip()
            if _INT_RE.fullmatch(s):
                return int(s)
            if _FLOAT_RE.fullmatch(s):
                f = float(s)
                if math.isfinite(f):
                    return f
    elif t == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif t == "array" and isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(v, schema["items"]) for v in value]
    elif t == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: _coerce(v, props.get(k)) for k, v in value.items()}
    return value


class ToolValidator:
    """Compiled argument check of one tool (thread-safe; shared by every episode of an environment)."""

    def __init__(self, name: str, parameters: dict, mode: str = "coerce"):
        if mode not in ("coerce", "strict", "off"):
            raise ValueError(f"argument_checking must be coerce, strict or off, not {mode!r}")
        self.name = name
        self.schema = parameters
        self.mode = mode
        self._validator = jsonschema.Draft202012Validator(parameters)
        self._object_schema = {**parameters, "type": "object"}

    def check(self, arguments: Any) -> dict:
        """Return the arguments to call with (possibly coerced), or raise :class:`ArgumentError`."""
        if not isinstance(arguments, dict):
            raise ArgumentError(f"arguments of `{self.name}` must be a JSON object, got {type(arguments).__name__}")
        if self.mode == "off":
            return arguments
        candidate = _coerce(arguments, self._object_schema) if self.mode == "coerce" else arguments
        if self._validator.is_valid(candidate):
            return candidate
        err = best_match(self._validator.iter_errors(arguments))
        where = json_path(err.absolute_path)
        raise ArgumentError(f"invalid arguments for `{self.name}`: {err.message} (at {where})")


# --- how calls run: the executor configuration --------------------------------------------------------

ISOLATIONS = ("process", "thread")


def _default_process_workers() -> int:
    return max(8, min(64, os.cpu_count() or 1))


@dataclass
class ExecutorConfig:
    """Process-wide settings of the tool executor (the pools every environment shares).

    Set with :func:`configure_executor` (the local engine passes ``rollout.tool_executor``) or with
    environment variables ``TOOL_ENVS_PROCESS_WORKERS``, ``TOOL_ENVS_THREAD_WORKERS`` and
    ``TOOL_ENVS_ISOLATION`` (read when the first call needs them), e.g. in a Ray ``runtime_env``.

    Attributes:
        process_workers: Most worker processes for ``isolation: process`` environments. Calls beyond it
            wait for a free worker, so N concurrent episodes whose calls each take t seconds finish in about
            ``ceil(N / process_workers) * t``. More workers cost memory (each is a fork of a small process
            with the backend modules, a few tens of MB) and little else while idle. Default:
            ``max(8, cpu_count)``, at most 64.
        thread_workers: Most threads running ``isolation: thread`` calls for async episodes (the runner). A
            call stuck in C code past its timeout loses its thread (it cannot be killed) and a new one takes
            its slot, so the count of live threads can exceed this only by such stuck calls.
        isolation: Override every environment's ``isolation`` (``process`` or ``thread``; ``None`` keeps the
            schema files' choice). For debugging a backend in-process (a debugger, prints) or for benchmarks.
        max_state_bytes: Largest pickled backend state a worker process may send back; an episode whose state
            grows beyond it stops running tools (errors for every later call).
        abandon_grace_s: In thread isolation, how long past its timeout an async episode waits for a call
            that ignores the interruption (blocked in C code) before it gives the thread up.
    """

    process_workers: int = field(default_factory=_default_process_workers)
    thread_workers: int = 32
    isolation: str | None = None
    max_state_bytes: int = 64 << 20
    abandon_grace_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("process_workers", "thread_workers", "max_state_bytes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ExecutorConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.isolation is not None and self.isolation not in ISOLATIONS:
            raise ValueError(f"ExecutorConfig.isolation must be one of {ISOLATIONS} or None, got {self.isolation!r}")
        if self.abandon_grace_s < 0:
            raise ValueError(f"ExecutorConfig.abandon_grace_s must be >= 0, got {self.abandon_grace_s!r}")

    @classmethod
    def from_env(cls) -> "ExecutorConfig":
        kw: dict[str, Any] = {}
        for name, var in (("process_workers", "TOOL_ENVS_PROCESS_WORKERS"), ("thread_workers", "TOOL_ENVS_THREAD_WORKERS")):
            if os.environ.get(var):
                try:
                    kw[name] = int(os.environ[var])
                except ValueError:
                    raise ValueError(f"environment variable {var}={os.environ[var]!r} is not an integer") from None
        if os.environ.get("TOOL_ENVS_ISOLATION"):
            kw["isolation"] = os.environ["TOOL_ENVS_ISOLATION"]
        return cls(**kw)


_CONFIG_LOCK = threading.Lock()
_CONFIG: ExecutorConfig | None = None


def executor_config() -> ExecutorConfig:
    """The current :class:`ExecutorConfig` (from the environment variables until configured)."""
    global _CONFIG
    if _CONFIG is None:
        with _CONFIG_LOCK:
            if _CONFIG is None:
                _CONFIG = ExecutorConfig.from_env()
    return _CONFIG


def configure_executor(config: ExecutorConfig | Mapping[str, Any] | None = None, **overrides: Any) -> ExecutorConfig:
    """Replace the executor configuration (fields not given keep their current values).

    Pools are resized lazily: a changed ``process_workers`` restarts the process pool (idle workers are
    killed, busy ones finish their request first); a changed ``thread_workers`` applies to new threads.
    """
    global _CONFIG
    current = executor_config()
    if isinstance(config, ExecutorConfig):
        new = replace(config, **overrides)
    else:
        values = dict(config or {})
        unknown = sorted(set(values) - set(asdict(current)))
        if unknown:
            raise ValueError(f"unknown tool executor option(s) {unknown}; allowed: {sorted(asdict(current))}")
        new = replace(current, **values, **overrides)
    with _CONFIG_LOCK:
        _CONFIG = new
    if new.process_workers != current.process_workers:
        from tool_envs.procpool import reset_process_pool  # here: procpool imports this module

        reset_process_pool()
    _THREADS.max_threads = new.thread_workers
    return new


# --- thread isolation: a watchdog interrupts calls that overrun ------------------------------------


class CallTimeout(BaseException):
    """Raised inside a thread-isolated call that overran its deadline (a BaseException, so a backend's
    ``except Exception`` does not swallow it)."""


_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(("PyThreadState_SetAsyncExc", ctypes.pythonapi))
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(("PyThreadState_SetAsyncExc", ctypes.pythonapi))


class _Guard:
    __slots__ = ("tid", "deadline", "fired")

    def __init__(self, tid: int, deadline: float):
        self.tid, self.deadline, self.fired = tid, deadline, False


class Watchdog:
    """Interrupts thread-isolated calls at their deadline by raising :class:`CallTimeout` in their thread.

    Only Python code can be interrupted this way: a call blocked in C code (a huge integer power, a socket
    read without timeout) gets the exception when that C code returns. That is why untrusted backends run
    with ``isolation: process``.

    Arming costs a lock and a dict entry; the watchdog thread wakes only at deadlines and about once a
    second while calls keep coming (``LINGER_S``), and sleeps for good when no call is running.
    """

    LINGER_S = 1.0

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active: dict[int, _Guard] = {}
        self._wake_at = math.inf  # when the watchdog thread looks next (inf: asleep until notified)
        self._linger_until = 0.0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, fn: Callable[[], Any], timeout: float) -> tuple[Any, bool]:
        """Run ``fn()`` in this thread with a deadline; returns ``(value or None, timed_out)``."""
        guard = self._arm(timeout)
        value = None
        try:
            try:
                value = fn()
            except CallTimeout:
                pass
            finally:
                self._disarm(guard)
        except CallTimeout:  # delivered late, after fn returned: at most one is ever delivered per guard
            self._disarm(guard)
        return (None, True) if guard.fired else (value, False)

    def _arm(self, timeout: float) -> _Guard:
        now = time.monotonic()
        guard = _Guard(threading.get_ident(), now + timeout)
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="tool-env-watchdog", daemon=True)
                self._thread.start()
            self._active[guard.tid] = guard
            self._linger_until = now + self.LINGER_S
            if guard.deadline < self._wake_at:
                self._wake_at = guard.deadline
                self._cond.notify()
        return guard

    def _disarm(self, guard: _Guard) -> None:
        with self._cond:
            if self._active.get(guard.tid) is guard:
                del self._active[guard.tid]
            if guard.fired:
                _clear_async_exc(guard.tid, None)  # drop a CallTimeout that was raised but not yet delivered

    def _loop(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                nxt = math.inf
                for g in self._active.values():
                    if g.fired:
                        continue
                    if g.deadline <= now:
                        g.fired = True
                        _set_async_exc(g.tid, CallTimeout)
                    else:
                        nxt = min(nxt, g.deadline)
                if nxt == math.inf and now < self._linger_until:
                    nxt = self._linger_until
                self._wake_at = nxt
                self._cond.wait(None if nxt == math.inf else nxt - now)


WATCHDOG = Watchdog()


class ThreadJob:
    """The calls of one message, run in order on a pool thread, each under the watchdog.

    ``cur`` is ``(index, start time)`` of the running call; ``results`` grows as calls finish; ``hung`` is the
    index of a call that overran (the rest are not started). ``abandoned`` is set by the waiting side when
    it gives up on a call stuck in C code: the thread then exits once the call returns.
    """

    __slots__ = ("fns", "timeout", "results", "cur", "hung", "abandoned", "on_done")

    def __init__(self, fns: list[Callable[[], Any]], timeout: float | None, on_done: Callable[[], None]):
        self.fns, self.timeout, self.on_done = fns, timeout, on_done
        self.results: list[Any] = []
        self.cur = (0, time.monotonic())
        self.hung: int | None = None
        self.abandoned = False

    def run(self) -> None:
        try:
            for i, fn in enumerate(self.fns):
                self.cur = (i, time.monotonic())
                if self.timeout is None:
                    self.results.append(fn())
                    continue
                value, timed_out = WATCHDOG.run(fn, self.timeout)
                if timed_out:
                    self.hung = i
                    break
                self.results.append(value)
        finally:
            if not self.abandoned:
                self.on_done()


class ThreadPool:
    """At most ``max_threads`` daemon threads running :class:`ThreadJob` s; idle threads wait for work."""

    def __init__(self, max_threads: int):
        self.max_threads = max_threads
        self._queue: "queue.SimpleQueue[ThreadJob]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._pid = os.getpid()
        self.lost = 0  # threads given up on (a call stuck in C code)

    def submit(self, job: ThreadJob) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's threads do not exist here
                self._pid, self._threads, self._idle, self._queue = os.getpid(), 0, 0, queue.SimpleQueue()
            if self._idle == 0 and self._threads < self.max_threads:
                self._threads += 1
                threading.Thread(target=self._work, name="tool-env-call", daemon=True).start()
            else:
                self._idle -= 1 if self._idle else 0
        self._queue.put(job)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            job.run()
            with self._lock:
                if job.abandoned:  # our slot was given to a new thread already
                    return
                self._idle += 1

    def give_up(self, job: ThreadJob) -> None:
        """The waiting side stops waiting for ``job``: free its thread's slot (the thread exits when it can)."""
        with self._lock:
            job.abandoned = True
            self._threads -= 1
            self.lost += 1


_THREADS = ThreadPool(32)


def thread_pool() -> ThreadPool:
    _THREADS.max_threads = executor_config().thread_workers
    return _THREADS


async def run_in_thread(fns: list[Callable[[], Any]], timeout: float | None) -> tuple[list[Any], int | None]:
    """Run ``fns`` in order on a pool thread without blocking the event loop, each with ``timeout``.

    Returns ``(results of the calls that finished, index of the call that overran or None)``. A call that
    overruns is interrupted by the watchdog; one that ignores it (blocked in C code) is given up after
    ``abandon_grace_s`` more seconds.
    """
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def done() -> None:
        try:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))
        except RuntimeError:  # the loop closed meanwhile
            pass

    job = ThreadJob(fns, timeout, done)
    pool = thread_pool()
    pool.submit(job)
    if timeout is None:
        await fut
        return job.results, job.hung
    grace = executor_config().abandon_grace_s
    while not fut.done():
        i, started = job.cur
        left = started + timeout + grace - time.monotonic()
        if left > 0:
            await asyncio.wait([fut], timeout=left)
            continue
        if job.cur == (i, started):
            pool.give_up(job)
            return job.results[:i], i
    return job.results, job.hung
