"""Benchmark: our executor + bfcl-eval's checkers vs bfcl-eval's own eval-based path, 800 BFCL entries.

For every BFCL V3 multi-turn entry the ground truth is scored as if it were the model's answer, once as
given (all valid) and once with one string argument corrupted (mostly invalid):

* ours: parse the model's call strings with ``parse_tool_calls(..., "python")`` (ast only), then
  ``reward.multi_turn.check_turns`` (fresh episodes, our executor, bfcl's state/response checkers);
* bfcl: ``multi_turn_checker`` (``execute_multi_turn_func_call``, i.e. ``eval``), a unique model name per
  entry and its module globals cleaned afterwards.

Verdicts (valid + error_type) must be identical. Prints timings and, last, ``ratio_ours_over_bfcl=<x>``
(best of --repeats wall times; goal <= 1.0).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-root-"))

from tqdm import tqdm  # noqa: E402

from dipo_tools.eval.bfcl_reference import reference_multi_turn_check  # noqa: E402
from reward.multi_turn import check_turns  # noqa: E402
from tool_envs.bfcl import _signatures, load_bfcl_tasks  # noqa: E402
from tool_envs.parsing import format_tool_calls, parse_tool_calls  # noqa: E402
from tool_envs.types import ToolCall  # noqa: E402


def corrupt(task) -> list[list[str]]:
    """The GT call strings with the first string argument of the entry replaced."""
    turns = [list(t) for t in task.gt_calls]
    for t, calls in enumerate(turns):
        for i, c in enumerate(calls):
            for k, v in c.arguments.items():
                if isinstance(v, str):
                    calls[i] = ToolCall(c.name, {**c.arguments, k: v + "_corrupted"})
                    return [[format_tool_calls([x], "python")[1:-1] for x in turn] for turn in turns]
    return [list(s) for s in task.metadata["gt_strings"]]


def run_ours(tasks, model_strings) -> tuple[float, list[tuple]]:
    verdicts = []
    t0 = time.perf_counter()
    for task, turns in zip(tasks, model_strings):
        sigs = _signatures(tuple(task.metadata["involved_classes"]))
        steps = [[parse_tool_calls(s, "python", signatures=sigs)[0] for s in turn] for turn in turns]
        res = check_turns(task, [[s] if s else [] for s in steps], details=False)
        verdicts.append((res["valid"], res.get("error_type")))
    return time.perf_counter() - t0, verdicts


def run_bfcl(tasks, model_strings) -> tuple[float, list[tuple]]:
    verdicts = []
    t0 = time.perf_counter()
    for task, turns in zip(tasks, model_strings):
        entry = {"id": task.id, "initial_config": task.initial_state, "involved_classes": task.metadata["involved_classes"]}
        decoded = [[list(turn)] if turn else [] for turn in turns]
        res = reference_multi_turn_check(entry, decoded, task.metadata["gt_strings"])
        verdicts.append((res["valid"], res.get("error_type")))
    return time.perf_counter() - t0, verdicts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    tasks = load_bfcl_tasks()
    gt = [task.metadata["gt_strings"] for task in tasks]
    bad = [corrupt(task) for task in tasks]
    model = gt + bad
    both = tasks + tasks
    run_ours(both[:20], model[:20])  # warm caches/imports on both sides
    run_bfcl(both[:20], model[:20])
    t_ours, t_bfcl = [], []
    for _ in tqdm(range(args.repeats), desc="bench_envs", file=sys.stderr):
        t, v_ours = run_ours(both, model)
        t_ours.append(t)
        t, v_bfcl = run_bfcl(both, model)
        t_bfcl.append(t)
        if v_ours != v_bfcl:
            diff = [(both[i].id, a, b) for i, (a, b) in enumerate(zip(v_ours, v_bfcl)) if a != b]
            print(f"VERDICT MISMATCH on {len(diff)} entries, e.g. {diff[:5]}")
            return 1
    n_valid_gt = sum(v for v, _ in v_ours[: len(tasks)])
    n_valid_bad = sum(v for v, _ in v_ours[len(tasks):])
    print(f"entries: {len(tasks)} GT (valid {n_valid_gt}/{len(tasks)}) + {len(tasks)} corrupted (valid {n_valid_bad}); verdicts identical")
    print(f"ours (parse + executor + checkers): {min(t_ours):.3f} s  ({min(t_ours) / len(both) * 1e3:.2f} ms/entry)")
    print(f"bfcl (multi_turn_checker, eval):     {min(t_bfcl):.3f} s  ({min(t_bfcl) / len(both) * 1e3:.2f} ms/entry)")
    print(f"ratio_ours_over_bfcl={min(t_ours) / min(t_bfcl):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
