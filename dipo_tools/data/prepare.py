"""``dipo data prepare …`` / ``python -m dipo_tools.data.prepare …``: build verl parquet files.

Subcommands::

    toolrl  SRC OUT_DIR [--test-fraction 0.02 --seed 31415]   # rlla-4k JSON or parquet
    tasks   SRC.jsonl OUT.parquet [--env NAME_OR_SCHEMA]       # tool_envs Task JSONL
    math    SRC OUT.parquet --data-source NAME                  # DAPO-Math-17k / eval sets (path or hub id)
"""
from __future__ import annotations

import argparse
import sys

from dipo_tools.data.common import DataPrepError
from dipo_tools.data.env_tasks import prepare_env_tasks
from dipo_tools.data.math import prepare_math
from dipo_tools.data.toolrl import prepare_toolrl
from tool_envs import SchemaError, get_spec


def _add_prepare_parsers(prep: argparse.ArgumentParser) -> None:
    sub = prep.add_subparsers(dest="kind", required=True)

    p = sub.add_parser("toolrl", help="ToolRL rlla-4k (.json raw or .parquet) -> OUT_DIR/{train,test}.parquet")
    p.add_argument("src")
    p.add_argument("out_dir")
    p.add_argument("--test-fraction", type=float, default=0.0, help="held-out share (ToolRL used 0.02)")
    p.add_argument("--seed", type=int, default=31415)
    p.add_argument("--data-source", default="rlla")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(_run=_run_toolrl)

    p = sub.add_parser("tasks", help="tool_envs Task JSONL -> parquet for the dipo_tool_agent loop")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--env", default=None, help="schema file or registered env name (default: the task's envs)")
    p.add_argument("--data-source", default="tool_env")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer (model folder or hub id) to measure each rendered prompt, tool schemas included")
    p.add_argument("--max-prompt-length", type=int, default=None,
                   help="drop tasks whose rendered prompt is longer (use the config's data.max_prompt_length)")
    p.set_defaults(_run=_run_tasks)

    p = sub.add_parser("math", help="math data (local file or hub id) -> parquet")
    p.add_argument("src", help="path, or hub id such as BytedTsinghua-SIA/DAPO-Math-17k")
    p.add_argument("out")
    p.add_argument("--data-source", required=True, help="e.g. math_dapo, aime24, math500 (routes the reward)")
    p.add_argument("--split", default="train", help="split name written into extra_info")
    p.add_argument("--hub-split", default="train", help="split to load for a hub id")
    p.add_argument("--no-dedupe", action="store_true")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(_run=_run_math)


def _report(paths: dict, written: dict, dropped: dict) -> None:
    """``<file>: wrote N rows`` per file, the last line with how many records were dropped and why."""
    items = list(paths.items())
    why = ", ".join(f"{v} {k}" for k, v in dropped.items() if v)
    for i, (split, path) in enumerate(items):
        tail = f", dropped {sum(dropped.values())}{f' ({why})' if why else ''}" if i == len(items) - 1 else ""
        print(f"{path}: wrote {written[split]} rows{tail}")


def _run_toolrl(a: argparse.Namespace) -> None:
    stats: dict = {}
    paths = prepare_toolrl(a.src, a.out_dir, test_fraction=a.test_fraction, seed=a.seed,
                           data_source=a.data_source, limit=a.limit, stats=stats)
    _report(paths, stats["written"], stats["dropped"])


def _run_tasks(a: argparse.Namespace) -> None:
    if a.env:  # the rows only name it: check now rather than when training starts
        try:
            get_spec(a.env)
        except (KeyError, SchemaError) as e:
            raise DataPrepError(f"--env {a.env}: {e.args[0] if isinstance(e, KeyError) else e}") from None
    tokenizer = None
    if (a.tokenizer is None) != (a.max_prompt_length is None):
        raise DataPrepError("--tokenizer and --max-prompt-length go together (the length is measured in its tokens)")
    if a.tokenizer is not None:
        # here, not at the top: importing transformers takes 5 s (load average 10), needed for --tokenizer only
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(a.tokenizer)
    stats: dict = {}
    out = prepare_env_tasks(a.src, a.out, env=a.env, data_source=a.data_source, split=a.split, limit=a.limit,
                            tokenizer=tokenizer, max_prompt_length=a.max_prompt_length, stats=stats)
    why = f" whose rendered prompt exceeds {a.max_prompt_length} tokens" if stats["dropped_long"] else ""
    print(f"{out}: wrote {stats['written']} rows, dropped {stats['dropped_long']}{why}")


def _run_math(a: argparse.Namespace) -> None:
    stats: dict = {}
    path = prepare_math(a.src, a.out, data_source=a.data_source, split=a.split, hub_split=a.hub_split,
                        dedupe=not a.no_dedupe, limit=a.limit, stats=stats)
    _report({a.split: path}, stats["written"], stats["dropped"])


def _dispatch(args: argparse.Namespace) -> int:
    try:
        args._run(args)
    except DataPrepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def register_cli(subparsers) -> None:
    """Add ``data prepare {toolrl,tasks,math}`` to the ``dipo`` command (``args.func(args)`` runs it)."""
    data = subparsers.add_parser("data", help="prepare training/eval data for verl")
    data_sub = data.add_subparsers(dest="data_cmd", required=True)
    prep = data_sub.add_parser("prepare", help="convert a source dataset to verl parquet")
    _add_prepare_parsers(prep)
    prep.set_defaults(func=_dispatch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dipo_tools.data.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_prepare_parsers(parser)
    return _dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
