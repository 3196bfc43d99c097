"""Benchmark: our eval-free multi-turn check vs bfcl-eval's multi_turn_checker path on the 800 GT entries,
in-process and isolated, idle and under load.

Both sides get bfcl's decoded form (``[turn][step][call string]``) and must give the same verdicts. Ours
parses the strings with ``ast`` and executes through the tool_envs executor, the model's side with
``isolation: thread`` (in-process) and with ``isolation: process`` (worker processes); bfcl's ``eval``s them
(safe here: the inputs are bfcl's own ground truths). Goals: in-process <= 1.0x, isolated <= 2.0x, under
both conditions (``idle``: the machine as found; ``load``: one busy-loop process per core).
Last line: ``ratio_ours_over_bfcl=<in-process ratio, idle>``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-bench-"))

from _conditions import conditions  # noqa: E402

from dipo_tools.eval.bfcl import check_multi_turn_entry  # noqa: E402
from dipo_tools.eval.bfcl_data import load_category  # noqa: E402
from dipo_tools.eval.bfcl_reference import reference_multi_turn_check  # noqa: E402
from tool_envs.executor import configure_executor  # noqa: E402

CATS = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conditions", default="idle,load", help="comma list of idle,load")
    args = ap.parse_args(argv)
    data = []
    for c in CATS:
        entries, answers = load_category(c)
        data += [(e, a["ground_truth"], [[t] if t else [] for t in a["ground_truth"]]) for e, a in zip(entries, answers)]
    # warm both paths (imports, backend modules, the worker pool)
    for mode in ("thread", "process"):
        configure_executor(isolation=mode)
        for e, gt, d in data[:20]:
            check_multi_turn_entry(e, d, gt)
    reference_multi_turn_check(data[0][0], data[0][2], data[0][1])
    ok = True
    summary = None
    for name, desc in conditions(args.conditions.split(",")):
        best = {"thread": float("inf"), "process": float("inf"), "bfcl": float("inf")}
        for _ in range(args.repeats):
            for mode in ("thread", "process"):
                configure_executor(isolation=mode)
                t = time.perf_counter()
                ours = [check_multi_turn_entry(e, d, gt) for e, gt, d in data]
                best[mode] = min(best[mode], time.perf_counter() - t)
            configure_executor(isolation=None)
            t = time.perf_counter()
            ref = [reference_multi_turn_check(e, d, gt) for e, gt, d in data]
            best["bfcl"] = min(best["bfcl"], time.perf_counter() - t)
            if ours != ref:
                bad = [e["id"] for (e, _, _), a, b in zip(data, ours, ref) if a != b]
                raise SystemExit(f"verdicts differ on {len(bad)} entries, e.g. {bad[:5]}")
        r_thread, r_process = best["thread"] / best["bfcl"], best["process"] / best["bfcl"]
        valid = sum(r["valid"] for r in ours)
        print(f"[{name}] {desc}")
        print(f"[{name}] entries={len(data)} valid={valid} same_verdicts=True")
        print(f"[{name}] ours_in_process_s={best['thread']:.3f} ours_isolated_s={best['process']:.3f} "
              f"bfcl_s={best['bfcl']:.3f} (best of {args.repeats})")
        print(f"[{name}] ratio_in_process_over_bfcl={r_thread:.3f} (goal <= 1.0)  ratio_isolated_over_bfcl={r_process:.3f} (goal <= 2.0)")
        ok &= r_thread <= 1.0 and r_process <= 2.0
        summary = r_thread if summary is None else summary
    print(f"all goals met: {ok}")
    print(f"ratio_ours_over_bfcl={summary:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
