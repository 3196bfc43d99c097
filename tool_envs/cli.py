"""Command line: ``python -m tool_envs list | validate FILE... | play ENV | build-tasks IN OUT``.

``register_cli(subparsers)`` mounts the same commands as ``dipo env ...`` in the project CLI. Every
command takes ``--env-path DIR`` (repeatable) to find environments kept outside the repository by name;
the folders of the task files it reads are searched too. Errors are one line on stderr, exit code 2.

An application module (the top layer, like ``dipo_tools.cli``): ``validate`` and ``play --policy oracle``
score episodes with the reward, so this module imports :mod:`reward`; the library modules of ``tool_envs``
never do.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence, TextIO

from reward.oracle import run_oracle
from reward.validate import validate_files
from tool_envs.oracle import with_final_state
from tool_envs.parsing import ToolCallParseError, parse_tool_calls
from tool_envs.registry import env_for_task, env_path, get_spec, list_envs, load_env, set_env_path
from tool_envs.schema import SchemaError
from tool_envs.tasks import TaskError, load_tasks, save_tasks
from tool_envs.types import ToolCall


class CliError(Exception):
    """A problem with the command's input, reported as one line."""


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    for name in list_envs():
        spec = get_spec(name)
        kind = spec.backend.class_path if spec.backend else "record/replay"
        desc = (spec.description or "").strip().splitlines()[0][:70] if spec.description else ""
        print(f"{name:22s} {len(spec.tools):3d} tools  {kind}\n{'':22s} {desc}", file=out)
    return 0


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    status = 0
    for path, summary, problems in validate_files(args.files, replay=not args.no_replay):
        if problems:
            status = 1
            for p in problems:
                print(f"ERROR {p}", file=out)
        else:
            print(f"OK {path}: {summary}", file=out)
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


def _pick_task(args: argparse.Namespace):
    tasks = load_tasks(args.tasks)
    if not tasks:
        raise CliError(f"{args.tasks}: no tasks in the file")
    task = next((t for t in tasks if t.id == args.task_id), None) if args.task_id else tasks[0]
    if task is None:
        raise CliError(f"{args.tasks}: no task with id {args.task_id!r} (the file has {', '.join(t.id for t in tasks[:5])}{', ...' if len(tasks) > 5 else ''})")
    return task


def _cmd_play(args: argparse.Namespace, out: TextIO, inp: TextIO | None = None) -> int:
    inp = inp or sys.stdin
    env = load_env(args.env)
    if args.policy == "oracle":
        if not args.tasks:
            raise CliError("--policy oracle plays a task's ground truth: give --tasks FILE (and --task-id ID)")
        task = _pick_task(args)
        return _play_oracle(env_for_task(task) if task.envs else env, task, out)  # all the environments it names
    task = None
    if args.tasks:
        task = _pick_task(args)
    elif args.state:
        try:
            state = json.loads(args.state)
        except json.JSONDecodeError as e:
            raise CliError(f"--state is not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(state, dict):
            raise CliError('--state must be a JSON object keyed by environment, e.g. {"inventory": {"stock": {"apple": 3}}}')
        task = {"initial_state": state}
    try:
        ep = env.new_episode(task)
    except Exception as e:  # noqa: BLE001 - the backend rejected the initial state
        raise CliError(f"{env.name}: the initial state was rejected ({type(e).__name__}: {e})") from None
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


def _play_oracle(env, task, out: TextIO) -> int:
    """Play the task's ground truth through the training runner and print the transcript and the reward."""
    if task.gt_calls is None and task.gt_final_state is None:
        raise CliError(f"task {task.id!r} has no ground truth (ground_truth.calls / final_state) to play or score")
    run = run_oracle(task, env)
    for m in run.trajectory.messages:
        role = f"tool {m.get('name', '')}".strip() if m["role"] == "tool" else m["role"]
        print(f"[{role}] {m['content']}", file=out)
    r = run.reward
    print(f"reward: score={r.score:.3f} success={r.success}" + (f" ({r.error_type}: {r.error_message})" if r.error_type else ""), file=out)
    if r.components:
        print("components: " + ", ".join(f"{k}={v:.3f}" for k, v in r.components.items()), file=out)
    for tc in r.per_turn:
        if tc.checked:
            print(f"turn {tc.turn}: {'pass' if tc.passed else 'FAIL'} (calls={tc.call_score if tc.call_score is None else round(tc.call_score, 3)}, "
                  f"state_ok={tc.state_ok}, response_ok={tc.response_ok}"
                  + (f", state differs: {', '.join(tc.state_differences)}" if tc.state_differences else "") + ")", file=out)
    if r.final_state_ok is not None:
        print(f"final_state_ok={r.final_state_ok}", file=out)
    return 0 if r.success else 1


def _cmd_build_tasks(args: argparse.Namespace, out: TextIO) -> int:
    built = []
    for task in load_tasks(args.input):
        try:
            built.append(with_final_state(task))
        except Exception as e:  # noqa: BLE001 - name the task, stop: a partial file would mislead
            raise CliError(f"{args.input}: task {task.id!r}: cannot execute its ground truth ({type(e).__name__}: {e})") from None
    n = save_tasks(built, args.output)
    print(f"wrote {n} tasks to {args.output} (ground_truth.final_state computed by executing ground_truth.calls)", file=out)
    return 0


_ERRORS = (CliError, SchemaError, TaskError, KeyError, ValueError, ImportError, OSError)


def _dispatch(args: argparse.Namespace) -> int:
    """``args.func(args)`` entry used by parent CLIs (the ``dipo`` command calls ``args.func(args)``)."""
    return run_parsed(args)


def _with_env_path(args: argparse.Namespace) -> None:
    """``--env-path`` folders, then the folders of the task files the command reads, join the search path."""
    task_files = [f for f in (getattr(args, "files", None) or []) if str(f).endswith(".jsonl")]
    task_files += [f for f in (getattr(args, "tasks", None), getattr(args, "input", None)) if f]
    extra = list(getattr(args, "env_path", None) or []) + [str(pathlib.Path(f).resolve().parent) for f in task_files]
    if extra:
        current = [str(p) for p in env_path()]
        set_env_path(list(dict.fromkeys([*extra, *current])))


def _add_commands(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env-path", action="append", metavar="DIR",
                       help="folder of environments found by name (repeatable; also $TOOL_ENVS_PATH)")

    p = sub.add_parser("list", help="list built-in, registered and search-path environments")
    common(p)
    p.set_defaults(_run=_cmd_list, func=_dispatch)
    p = sub.add_parser("validate", help="validate schema files (.yaml/.yml/.json) and task files (.jsonl, replayed)",
                       description="Schema files are checked against their backends; every task of a task file is "
                                   "replayed through the training runner and reward and must pass its own check.")
    p.add_argument("files", nargs="+")
    p.add_argument("--no-replay", action="store_true", help="check task fields only, do not replay the ground truth")
    common(p)
    p.set_defaults(_run=_cmd_validate, func=_dispatch)
    p = sub.add_parser("play", help="call an environment's tools by hand (reads calls from stdin), or watch the ground truth play",
                       description=_PLAY_HELP)
    p.add_argument("env", help="built-in name, backend class name, search-path name or schema file")
    p.add_argument("--tasks", help="JSONL task file to take the initial state from (first task unless --task-id)")
    p.add_argument("--task-id")
    p.add_argument("--state", help='initial state as JSON, e.g. \'{"inventory": {"stock": {"apple": 3}}}\'')
    p.add_argument("--policy", choices=("human", "oracle"), default="human",
                   help="oracle: play the task's ground-truth calls through the training runner and print the "
                        "transcript and the reward breakdown")
    common(p)
    p.set_defaults(_run=_cmd_play, func=_dispatch)
    p = sub.add_parser("build-tasks", help="fill in ground_truth.final_state by executing each task's ground-truth calls")
    p.add_argument("input", help="JSONL tasks with ground_truth.calls")
    p.add_argument("output", help="JSONL to write")
    common(p)
    p.set_defaults(_run=_cmd_build_tasks, func=_dispatch)


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``env list | validate FILE... | play ENV | build-tasks IN OUT`` to a parent CLI.

    Run the parsed namespace with ``args.func(args)`` or :func:`run_parsed` (which can redirect output).
    """
    env = subparsers.add_parser("env", help="tool environments: list, validate, play")
    _add_commands(env.add_subparsers(dest="env_cmd", required=True))
    env.set_defaults(_run_env=True)
    return env


def run_parsed(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a namespace produced by a parser that :func:`register_cli` extended; a bad input (environment,
    task file, argument) is one line on stderr and exit code 2."""
    try:
        _with_env_path(args)
        return args._run(args, out or sys.stdout)
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except _ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tool_envs", description="Tool environments: list, validate, play, build-tasks.")
    _add_commands(ap.add_subparsers(dest="cmd", required=True))
    return run_parsed(ap.parse_args(argv))
