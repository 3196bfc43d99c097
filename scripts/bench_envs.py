"""Benchmark: our executor + bfcl-eval's checkers vs bfcl-eval's own eval-based path, 800 BFCL entries,
in-process and isolated, idle and under load; plus 256 concurrent episodes with one hung call.

For every BFCL V3 multi-turn entry the ground truth is scored as if it were the model's answer, once as
given (all valid) and once with one string argument corrupted (mostly invalid):

* ours: parse the model's call strings with ``parse_tool_calls(..., "python")`` (ast only), then
  ``reward.multi_turn.check_turns`` (fresh episodes, our executor, bfcl's state/response checkers). The
  model's calls run with ``isolation: thread`` (in-process) and with ``isolation: process`` (a worker
  process per request); the ground truth always runs in-process.
* bfcl: ``multi_turn_checker`` (``execute_multi_turn_func_call``, i.e. ``eval``), a unique model name per
  entry and its module globals cleaned afterwards.

Verdicts (valid + error_type) must be identical. Goals (best of --repeats wall times): in-process <= 1.0x
bfcl, isolated <= 2.0x bfcl.

Hang test: 256 BFCL ground-truth episodes run concurrently through the episode runner (isolated, call
timeout --timeout), once as they are and once with one episode's first call replaced by a call that never
returns (best of --hang-repeats interleaved runs each). Goal: ``with_hang_s <= 1.1 * max(no_hang_s,
timeout_s)``: the hung call costs its episode the timeout and nobody else anything. ``hang=sleep`` blocks without using CPU (a tool waiting on a dead
server); ``hang=cpu`` is MathAPI's ``power(10, 10**9)``, which also takes a core away from everyone until it
is killed, so it is shown for information.

Both conditions (``idle``: the machine as found; ``load``: one busy-loop process per core) are measured in
one run. The last line is ``ratio_ours_over_bfcl=<in-process ratio, idle>``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import textwrap
import time

os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-root-"))

from _conditions import conditions  # noqa: E402

from dipo_tools.eval.bfcl_reference import reference_multi_turn_check  # noqa: E402
from reward.multi_turn import check_turns  # noqa: E402
from tool_envs.bfcl import _signatures, load_bfcl_tasks  # noqa: E402
from tool_envs.env import ToolEnv  # noqa: E402
from tool_envs.executor import configure_executor  # noqa: E402
from tool_envs.oracle import TextTokenizer, oracle_generate, oracle_runner_config  # noqa: E402
from tool_envs.parsing import format_tool_calls, parse_tool_calls  # noqa: E402
from tool_envs.registry import get_spec  # noqa: E402
from tool_envs.runner import run_episode  # noqa: E402
from tool_envs.schema import spec_from_mapping  # noqa: E402
from tool_envs.tasks import Task  # noqa: E402
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


def verdict_bench(tasks, both, model, repeats: int) -> dict[str, float] | None:
    best = {"thread": float("inf"), "process": float("inf"), "bfcl": float("inf")}
    for _ in range(repeats):
        for mode in ("thread", "process"):
            configure_executor(isolation=mode)
            t, v_ours = run_ours(both, model)
            best[mode] = min(best[mode], t)
        configure_executor(isolation=None)
        t, v_bfcl = run_bfcl(both, model)
        best["bfcl"] = min(best["bfcl"], t)
        if v_ours != v_bfcl:
            diff = [(both[i].id, a, b) for i, (a, b) in enumerate(zip(v_ours, v_bfcl)) if a != b]
            print(f"VERDICT MISMATCH on {len(diff)} entries, e.g. {diff[:5]}")
            return None
    n_valid_gt = sum(v for v, _ in v_ours[: len(tasks)])
    n_valid_bad = sum(v for v, _ in v_ours[len(tasks):])
    best["valid"] = (n_valid_gt, n_valid_bad)
    return best


# --- hang test ----------------------------------------------------------------------------------------

HANG_BACKEND = textwrap.dedent(
    """
    import time

    class Stuck:
        def wait_forever(self):
            time.sleep(3600)
    """
)


def hang_envs(timeout: float, folder: str) -> dict:
    """Per BFCL environment name, its schema with ``call_timeout_s=timeout``; plus a ``stuck`` environment."""
    with open(os.path.join(folder, "stuck_backend.py"), "w") as f:
        f.write(HANG_BACKEND)
    stuck = spec_from_mapping({"name": "stuck", "backend": {"class": "stuck_backend.Stuck"},
                               "limits": {"call_timeout_s": timeout},
                               "tools": [{"type": "function", "function": {"name": "wait_forever", "parameters": {"type": "object", "properties": {}}}}]},
                              base_dir=folder)
    out = {"stuck": stuck}
    for name in ("gorilla_file_system", "math_api", "message_api", "posting_api", "ticket_api", "trading_bot", "travel_booking", "vehicle_control"):
        data = get_spec(name).to_dict()
        data["limits"]["call_timeout_s"] = timeout
        out[name] = spec_from_mapping(data)
    return out


def hang_bench(tasks, timeout: float, hang: str | None, specs: dict) -> float:
    """Wall time of 256 concurrent oracle episodes; with ``hang``, the first episode's first call hangs."""
    tok = TextTokenizer()
    envs: dict[tuple, ToolEnv] = {}

    def env_of(task) -> ToolEnv:
        key = tuple(task.envs)
        if key not in envs:
            envs[key] = ToolEnv([specs[n] for n in task.envs])
        return envs[key]

    async def one(task, script_task):
        env = env_of(task)
        return await run_episode(tokenizer=tok, env=env, task=task, generate=oracle_generate(tok, script_task),
                                 config=oracle_runner_config())

    runs = []
    for i, task in enumerate(tasks):
        script = task
        if i == 0 and hang:
            bad = ToolCall("power", {"base": 10, "exponent": 10**9}) if hang == "cpu" else ToolCall("wait_forever", {})
            envs_ = list(task.envs) + ([] if hang == "cpu" else ["stuck"])
            task = Task(id=task.id, envs=envs_, turns=task.turns, initial_state=task.initial_state,
                        ground_truth=task.ground_truth, missed_functions=task.missed_functions, long_context=task.long_context)
            calls = [list(t) for t in task.gt_calls]
            calls[0] = [bad] + calls[0]
            script = Task(id=task.id, envs=envs_, turns=task.turns, ground_truth={"calls": calls, "final_state": None})
        runs.append((task, script))

    async def main():
        return await asyncio.gather(*[one(t, s) for t, s in runs])

    t0 = time.perf_counter()
    trajs = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    if hang:  # stopped at its timeout (the cpu hang possibly by its CPU-time or memory limit first)
        first = trajs[0].turns[0][0].results[0]
        assert first.error and "Error during execution: the call" in first.content, first.content
    return elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conditions", default="idle,load", help="comma list of idle,load")
    ap.add_argument("--timeout", type=float, default=2.0, help="call timeout of the hang test")
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--hang-repeats", type=int, default=2, help="best of this many runs of each hang variant")
    args = ap.parse_args(argv)
    tasks = load_bfcl_tasks()
    gt = [task.metadata["gt_strings"] for task in tasks]
    bad = [corrupt(task) for task in tasks]
    model = gt + bad
    both = tasks + tasks
    for mode in ("thread", "process"):  # warm caches, imports and the worker pool on both sides
        configure_executor(isolation=mode)
        run_ours(both[:40], model[:40])
    configure_executor(isolation=None)
    run_bfcl(both[:20], model[:20])
    math_tasks = [t for t in tasks if "MathAPI" in t.metadata["involved_classes"]]
    hang_tasks = (math_tasks[:1] + [t for t in tasks if t is not math_tasks[0]])[: args.episodes]
    folder = tempfile.mkdtemp(prefix="bench-envs-")
    specs = hang_envs(args.timeout, folder)
    hang_bench(hang_tasks[:16], args.timeout, None, specs)
    summary = None
    ok = True
    for name, desc in conditions(args.conditions.split(",")):
        best = verdict_bench(tasks, both, model, args.repeats)
        if best is None:
            return 1
        r_thread, r_process = best["thread"] / best["bfcl"], best["process"] / best["bfcl"]
        print(f"[{name}] {desc}")
        print(f"[{name}] entries: {len(tasks)} GT (valid {best['valid'][0]}/{len(tasks)}) + {len(tasks)} corrupted "
              f"(valid {best['valid'][1]}); verdicts identical")
        print(f"[{name}] ours in-process: {best['thread']:.3f} s  isolated: {best['process']:.3f} s  "
              f"bfcl: {best['bfcl']:.3f} s  (best of {args.repeats}, {len(both)} entries)")
        print(f"[{name}] ratio_in_process_over_bfcl={r_thread:.3f} (goal <= 1.0)  ratio_isolated_over_bfcl={r_process:.3f} (goal <= 2.0)")
        ok &= r_thread <= 1.0 and r_process <= 2.0
        times: dict = {None: [], "sleep": [], "cpu": []}
        for _ in range(args.hang_repeats):  # interleaved, so a change in the machine's load hits all three
            for hang in times:
                times[hang].append(hang_bench(hang_tasks, args.timeout, hang, specs))
        no_hang = min(times[None])
        for hang in ("sleep", "cpu"):
            with_hang = min(times[hang])
            bound = 1.1 * max(no_hang, args.timeout)
            goal = "goal" if hang == "sleep" else "info"
            print(f"[{name}] hang={hang}: {len(hang_tasks)} concurrent episodes, no_hang_s={no_hang:.2f} with_hang_s={with_hang:.2f} "
                  f"timeout_s={args.timeout:g} ({goal}: with_hang_s <= 1.1*max(no_hang_s, timeout_s) = {bound:.2f}: "
                  f"{'met' if with_hang <= bound else 'NOT met'})")
            if hang == "sleep":
                ok &= with_hang <= bound
        if summary is None:
            summary = r_thread
    print(f"all goals met: {ok}")
    print(f"ratio_ours_over_bfcl={summary:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
