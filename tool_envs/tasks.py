"""Tasks: what one episode should achieve, stored one JSON object per line (JSONL).

A task names its environment(s), their initial state, the user messages of every turn and the ground
truth (per-turn calls and/or the expected final state). Loading validates every line and reports
``file:line: field: problem. Fix: ...``.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tool_envs.types import ToolCall


class TaskError(ValueError):
    """A task (or a JSONL line) is malformed; the message names file, line, field and fix."""


@dataclass
class Task:
    """One episode's specification.

    Attributes:
        id: Unique id (BFCL ids are kept, e.g. ``multi_turn_base_0``).
        envs: Environment names (built-in names, BFCL class names or schema-file paths) composed into one
            :class:`~tool_envs.env.ToolEnv` by :func:`tool_envs.env_for_task`.
        initial_state: Per environment (keyed by environment name or backend class name) the state handed
            to the backend's init hook; for record/replay environments the recorded outputs.
        turns: Per user turn the list of messages (``{"role": "user", "content": ...}``) to append.
        ground_truth: ``{"calls": [[ToolCall, ...] per turn] | None, "final_state": {...} | None}``.
        system_prompt: Optional task-specific system prompt (the runner's config prompt otherwise).
        missed_functions: ``{turn index: [tool names]}``: tools hidden at the start and revealed at that
            turn (BFCL miss_func).
        long_context: Ask backends to load their long-context filler (BFCL long_context).
        source: Where the task comes from (e.g. ``bfcl_v4:multi_turn_base`` or ``generated:inventory``).
        metadata: Anything else (free-form, JSON-able).
    """

    id: str
    envs: list[str]
    turns: list[list[dict]]
    initial_state: dict[str, Any] = field(default_factory=dict)
    ground_truth: dict[str, Any] = field(default_factory=lambda: {"calls": None, "final_state": None})
    system_prompt: str | None = None
    missed_functions: dict[int, list[str]] = field(default_factory=dict)
    long_context: bool = False
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def gt_calls(self) -> list[list[ToolCall]] | None:
        return self.ground_truth.get("calls")

    @property
    def gt_final_state(self) -> dict | None:
        return self.ground_truth.get("final_state")

    def user_texts(self) -> list[str]:
        return [m.get("content", "") for turn in self.turns for m in turn if m.get("role") == "user"]

    def to_dict(self) -> dict[str, Any]:
        calls = self.gt_calls
        gt = dict(self.ground_truth)
        gt["calls"] = None if calls is None else [[c.to_dict() for c in turn] for turn in calls]
        out: dict[str, Any] = {
            "id": self.id,
            "envs": list(self.envs),
            "initial_state": self.initial_state,
            "turns": self.turns,
            "ground_truth": gt,
        }
        if self.system_prompt is not None:
            out["system_prompt"] = self.system_prompt
        if self.missed_functions:
            out["missed_functions"] = {str(k): list(v) for k, v in self.missed_functions.items()}
        if self.long_context:
            out["long_context"] = True
        if self.source:
            out["source"] = self.source
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "<task>") -> "Task":
        """Build and validate; errors read ``<where>: <field>: <problem>. Fix: <fix>``."""

        def bad(fld: str, problem: str, fix: str) -> TaskError:
            return TaskError(f"{where}: {fld}: {problem}. Fix: {fix}")

        if not isinstance(d, Mapping):
            raise bad("$", f"expected a JSON object, got {type(d).__name__}", "write one task object per line")
        known = {"id", "envs", "initial_state", "turns", "ground_truth", "system_prompt", "missed_functions", "long_context", "source", "metadata"}
        extra = sorted(set(d) - known)
        if extra:
            raise bad(extra[0], "unknown field", f"use only {sorted(known)} (put anything else under metadata)")
        for req in ("id", "envs", "turns"):
            if req not in d:
                raise bad(req, "required field is missing", f"add `{req}`")
        if not isinstance(d["id"], str) or not d["id"]:
            raise bad("id", "must be a non-empty string", "give the task a unique string id")
        envs = d["envs"]
        if isinstance(envs, str):
            envs = [envs]
        if not isinstance(envs, list) or not envs or not all(isinstance(e, str) and e for e in envs):
            raise bad("envs", "must be a non-empty list of environment names", 'e.g. "envs": ["inventory"] (see `python -m tool_envs list`)')
        turns = d["turns"]
        if not isinstance(turns, list) or not all(isinstance(t, list) for t in turns):
            raise bad("turns", "must be a list of turns, each a list of messages", 'e.g. "turns": [[{"role": "user", "content": "..."}]]')
        for ti, turn in enumerate(turns):
            for mi, m in enumerate(turn):
                if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                    raise bad(f"turns[{ti}][{mi}]", "a message needs string `role` and `content`", 'write {"role": "user", "content": "..."}')
        initial = d.get("initial_state") or {}
        if not isinstance(initial, Mapping):
            raise bad("initial_state", "must be an object keyed by environment or class name", 'e.g. "initial_state": {"inventory": {...}}')
        gt_raw = d.get("ground_truth") or {}
        if not isinstance(gt_raw, Mapping):
            raise bad("ground_truth", "must be an object", 'write {"calls": [[...]], "final_state": {...}}')
        extra = sorted(set(gt_raw) - {"calls", "final_state", "responses"})
        if extra:
            raise bad(f"ground_truth.{extra[0]}", "unknown field", "use calls, final_state, responses")
        calls = gt_raw.get("calls")
        if calls is not None:
            if not isinstance(calls, list) or len(calls) != len(turns):
                raise bad("ground_truth.calls", f"must be a list with one list of calls per turn ({len(turns)} turns)", "add one (possibly empty) list per turn, or set calls to null")
            parsed = []
            for ti, turn_calls in enumerate(calls):
                if not isinstance(turn_calls, list):
                    raise bad(f"ground_truth.calls[{ti}]", "must be a list of calls", "write [] for a turn without calls")
                row = []
                for ci, c in enumerate(turn_calls):
                    if isinstance(c, ToolCall):
                        row.append(c)
                        continue
                    if not isinstance(c, Mapping) or not isinstance(c.get("name"), str) or not isinstance(c.get("arguments", {}), Mapping):
                        raise bad(f"ground_truth.calls[{ti}][{ci}]", "a call needs a string `name` and an object `arguments`", 'write {"name": "tool", "arguments": {...}}')
                    row.append(ToolCall(c["name"], dict(c.get("arguments", {}))))
                parsed.append(row)
            calls = parsed
        final_state = gt_raw.get("final_state")
        if final_state is not None and not isinstance(final_state, Mapping):
            raise bad("ground_truth.final_state", "must be an object (keyed like Episode.state())", "set it to the expected state or null")
        gt = dict(gt_raw)
        gt["calls"], gt["final_state"] = calls, final_state
        missed_raw = d.get("missed_functions") or {}
        if not isinstance(missed_raw, Mapping):
            raise bad("missed_functions", "must map a turn index to a list of tool names", 'e.g. {"2": ["sort"]}')
        missed: dict[int, list[str]] = {}
        for k, v in missed_raw.items():
            try:
                ki = int(k)
            except (TypeError, ValueError):
                raise bad(f"missed_functions.{k}", "key is not a turn index", "use the 0-based turn index as key") from None
            if not 0 <= ki < len(turns) or not isinstance(v, list) or not all(isinstance(n, str) for n in v):
                raise bad(f"missed_functions.{k}", f"needs a turn index in [0, {len(turns)}) and a list of tool names", "fix the index or the list")
            missed[ki] = list(v)
        for opt, typ in (("system_prompt", (str, type(None))), ("long_context", bool), ("source", str), ("metadata", Mapping)):
            if opt in d and not isinstance(d[opt], typ):
                raise bad(opt, f"has type {type(d[opt]).__name__}", f"use a {typ[0].__name__ if isinstance(typ, tuple) else typ.__name__}")
        return cls(
            id=d["id"],
            envs=list(envs),
            turns=[[dict(m) for m in t] for t in turns],
            initial_state=dict(initial),
            ground_truth=gt,
            system_prompt=d.get("system_prompt"),
            missed_functions=missed,
            long_context=bool(d.get("long_context", False)),
            source=d.get("source", ""),
            metadata=dict(d.get("metadata") or {}),
        )


def read_task_file(path: str | pathlib.Path) -> tuple[list[tuple[int, Task]], list[TaskError]]:
    """Every well-formed task of a JSONL file with its line number, and one :class:`TaskError` per malformed
    line (not JSON, a bad field, a duplicate id) or for a missing file. Blank lines are skipped.

    Each error carries ``where`` (``file:line``), ``field``, ``problem``, ``fix`` and ``task_id`` (when the
    line has one), so a validator can list them all; :func:`load_tasks` raises the first.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return [], [_error(str(path), "$", "file not found", "pass an existing .jsonl task file")]
    tasks, errors, seen = [], [], {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(_error(where, "$", f"not valid JSON ({e.msg} at column {e.colno})", "one JSON object per line"))
                continue
            try:
                task = Task.from_dict(raw, where)
            except TaskError as e:
                fld, _, rest = str(e)[len(where) + 2:].partition(": ")
                problem, _, fix = rest.partition(". Fix: ")
                # the original error (its message unchanged), with the parts a validator lists
                e.where, e.field, e.problem, e.fix = where, fld, problem, fix
                e.task_id = raw.get("id") if isinstance(raw, dict) else None
                errors.append(e)
                continue
            if task.id in seen:
                errors.append(_error(where, "id", f"duplicate id {task.id!r} (first on line {seen[task.id]})",
                                     "make ids unique", task.id))
                continue
            seen[task.id] = lineno
            tasks.append((lineno, task))
    return tasks, errors


def _error(where: str, field: str, problem: str, fix: str, task_id: str | None = None) -> TaskError:
    err = TaskError(f"{where}: {field}: {problem}. Fix: {fix}")
    err.where, err.field, err.problem, err.fix, err.task_id = where, field, problem, fix, task_id
    return err


def load_tasks(path: str | pathlib.Path) -> list[Task]:
    """Read a JSONL task file; blank lines are skipped; ids must be unique. Raises the first problem."""
    tasks, errors = read_task_file(path)
    if errors:
        raise errors[0]
    return [task for _, task in tasks]


def save_tasks(tasks: Iterable[Task], path: str | pathlib.Path) -> int:
    """Write tasks as JSONL (creating parent folders); returns the number written."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for t in tasks:
            f.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n
