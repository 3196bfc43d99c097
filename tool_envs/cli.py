"""Command line: ``python -m tool_envs list | validate FILE... | play ENV``.

``register_cli(subparsers)`` mounts the same commands as ``dipo env ...`` in the project CLI.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence, TextIO

from tool_envs.parsing import ToolCallParseError, parse_tool_calls
from tool_envs.registry import get_spec, list_envs, load_env
from tool_envs.schema import SchemaError, load_spec
from tool_envs.tasks import TaskError, load_tasks
from tool_envs.types import ToolCall


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    for name in list_envs():
        spec = get_spec(name)
        kind = spec.backend.class_path if spec.backend else "record/replay"
        desc = (spec.description or "").strip().splitlines()[0][:70] if spec.description else ""
        print(f"{name:22s} {len(spec.tools):3d} tools  {kind}\n{'':22s} {desc}", file=out)
    return 0


def _validate_tasks(path: pathlib.Path) -> str:
    tasks = load_tasks(path)
    for t in tasks:
        try:
            from tool_envs.registry import env_for_task

            env = env_for_task(t)
        except (KeyError, SchemaError, ValueError) as e:
            raise TaskError(f"{path}: task {t.id!r}: envs: {e}") from None
        names = set(env.tool_names)
        for ti, calls in enumerate(t.gt_calls or []):
            for ci, c in enumerate(calls):
                if c.name not in names:
                    raise TaskError(f"{path}: task {t.id!r}: ground_truth.calls[{ti}][{ci}]: unknown tool {c.name!r} for envs {t.envs}. Fix: use one of {sorted(names)}")
    return f"{len(tasks)} tasks"


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    status = 0
    for f in args.files:
        p = pathlib.Path(f)
        try:
            if p.suffix == ".jsonl":
                what = _validate_tasks(p)
            else:
                spec = load_spec(p)
                what = f"environment {spec.name!r}, {len(spec.tools)} tools"
            print(f"OK {p}: {what}", file=out)
        except (SchemaError, TaskError) as e:
            print(f"ERROR {e}", file=out)
            status = 1
    return status


_PLAY_HELP = """Type a call per line, e.g.  add_stock {"item": "apple", "quantity": 2}   or   add_stock(item='apple', quantity=2)
Commands: :tools  :state  :reveal  :quit"""


def _parse_play_line(line: str) -> list[ToolCall]:
    line = line.strip()
    head, _, rest = line.partition(" ")
    if rest.strip().startswith("{") and "(" not in head:
        try:
            args = json.loads(rest)
        except json.JSONDecodeError as e:
            raise ToolCallParseError(f"arguments are not valid JSON: {e.msg}") from None
        if not isinstance(args, dict):
            raise ToolCallParseError("arguments must be a JSON object")
        return [ToolCall(head, args)]
    if line.startswith("{") or line.startswith("<tool_call>"):
        return parse_tool_calls(line if line.startswith("<") else f"<tool_call>{line}</tool_call>", "hermes")
    if "(" not in line:
        return [ToolCall(line, {})]
    return parse_tool_calls(line, "python")


def _cmd_play(args: argparse.Namespace, out: TextIO, inp: TextIO | None = None) -> int:
    inp = inp or sys.stdin
    env = load_env(args.env)
    task = None
    if args.tasks:
        tasks = load_tasks(args.tasks)
        task = next((t for t in tasks if t.id == args.task_id), None) if args.task_id else tasks[0]
        if task is None:
            print(f"ERROR {args.tasks}: no task with id {args.task_id!r}", file=out)
            return 1
    elif args.state:
        task = {"initial_state": json.loads(args.state)}
    ep = env.new_episode(task)
    interactive = inp.isatty()
    if interactive:
        print(f"{env.name}: {len(ep.tools)} tools. {_PLAY_HELP}", file=out)
    if task is not None and not isinstance(task, dict):
        for turn in task.turns:
            for m in turn:
                print(f"[{m['role']}] {m['content']}", file=out)
    for line in inp:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line in (":quit", ":q", ":exit"):
            break
        if line == ":tools":
            for t in ep.tools:
                fn = t["function"]
                print(f"{fn['name']}({', '.join(fn['parameters'].get('properties', {}))}): {fn.get('description', '')[:80]}", file=out)
            continue
        if line == ":state":
            print(json.dumps(ep.state(), indent=1, default=str), file=out)
            continue
        if line == ":reveal":
            print(f"revealed: {ep.reveal()}", file=out)
            continue
        try:
            calls = _parse_play_line(line)
        except ToolCallParseError as e:
            print(f"parse error: {e}", file=out)
            continue
        for r in ep.execute(calls):
            print(f"{'ERROR ' if r.error else ''}{r.name} -> {r.content}", file=out)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    """``args.func(args)`` entry used by parent CLIs (the ``dipo`` command calls ``args.func(args)``)."""
    return args._run(args, sys.stdout)


def _add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list built-in and registered environments")
    p.set_defaults(_run=_cmd_list, func=_dispatch)
    p = sub.add_parser("validate", help="validate schema files (.yaml/.yml/.json) or task files (.jsonl)")
    p.add_argument("files", nargs="+")
    p.set_defaults(_run=_cmd_validate, func=_dispatch)
    p = sub.add_parser("play", help="call an environment's tools by hand (reads calls from stdin)", description=_PLAY_HELP)
    p.add_argument("env", help="built-in name, backend class name or schema file")
    p.add_argument("--tasks", help="JSONL task file to take the initial state from (first task unless --task-id)")
    p.add_argument("--task-id")
    p.add_argument("--state", help='initial state as JSON, e.g. \'{"inventory": {"stock": {"apple": 3}}}\'')
    p.set_defaults(_run=_cmd_play, func=_dispatch)


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``env list | validate FILE... | play ENV`` to a parent CLI.

    Run the parsed namespace with ``args.func(args)`` or :func:`run_parsed` (which can redirect output).
    """
    env = subparsers.add_parser("env", help="tool environments: list, validate, play")
    _add_commands(env.add_subparsers(dest="env_cmd", required=True))
    env.set_defaults(_run_env=True)
    return env


def run_parsed(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a namespace produced by a parser that :func:`register_cli` extended."""
    return args._run(args, out or sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tool_envs", description="Tool environments: list, validate, play.")
    _add_commands(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(argv)
    try:
        return run_parsed(args)
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
