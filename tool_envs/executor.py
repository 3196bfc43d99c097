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

import json
import math
import queue
import re
import threading
import time
from typing import Any, Callable

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


# --- timeouts: calls run on daemon worker threads so a hung backend never blocks the loop or exit ----


class _BatchJob:
    """Runs callables in order; ``cur`` = (index, start time) of the running one, swapped atomically."""

    __slots__ = ("fns", "results", "cur", "done", "cancelled")

    def __init__(self, fns: list[Callable[[], Any]]):
        self.fns, self.results, self.done, self.cancelled = fns, [], threading.Event(), False
        self.cur = (0, time.monotonic())

    def run(self) -> None:
        try:
            for i, fn in enumerate(self.fns):
                if self.cancelled:
                    break
                self.cur = (i, time.monotonic())
                self.results.append(fn())
        finally:
            self.done.set()


class _Worker(threading.Thread):
    """A daemon thread running jobs from its inbox, then offering itself as idle again."""

    def __init__(self, idle: "queue.SimpleQueue[_Worker]"):
        super().__init__(daemon=True, name="tool-env-call")
        self.inbox: "queue.SimpleQueue[_BatchJob]" = queue.SimpleQueue()
        self._idle = idle
        self.start()

    def run(self) -> None:
        while True:
            job = self.inbox.get()
            job.run()
            self._idle.put(self)


class CallRunner:
    """Runs callables under per-call wall-clock deadlines on reusable daemon threads.

    A call that overruns keeps its thread (Python threads cannot be killed); new threads are started as
    needed, so later calls are never stuck behind it, and daemon threads never block interpreter exit.
    """

    def __init__(self) -> None:
        self._idle: "queue.SimpleQueue[_Worker]" = queue.SimpleQueue()

    def _submit(self, job: _BatchJob) -> None:
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker(self._idle)
        worker.inbox.put(job)

    def run_batch(self, fns: list[Callable[[], Any]], timeout: float) -> tuple[list[Any], int | None]:
        """Run ``fns`` in order on one worker, each with its own ``timeout``.

        Returns ``(results of the calls that finished, index of the call that overran or None)``. The
        callables must not raise. After an overrun the remaining callables are not started.
        """
        job = _BatchJob(fns)
        self._submit(job)
        while True:
            i, started = job.cur
            left = started + timeout - time.monotonic()
            if job.done.wait(max(left, 0.0)):
                return job.results, None
            if job.done.is_set():
                return job.results, None
            if job.cur == (i, started) and time.monotonic() - started >= timeout:
                job.cancelled = True
                return job.results[:i], i


_RUNNER_LOCK = threading.Lock()
_RUNNER: CallRunner | None = None


def call_runner() -> CallRunner:
    """The process-wide runner (created on first use)."""
    global _RUNNER
    if _RUNNER is None:
        with _RUNNER_LOCK:
            if _RUNNER is None:
                _RUNNER = CallRunner()
    return _RUNNER
