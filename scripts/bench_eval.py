"""Benchmark: our eval-free multi-turn check vs bfcl-eval's multi_turn_checker path on the 800 GT entries.

Both sides get bfcl's decoded form (``[turn][step][call string]``) and must give the same verdicts. Ours
parses the strings with ``ast`` and executes through the tool_envs executor; bfcl's ``eval``s them (safe
here: the inputs are bfcl's own ground truths). Last line: ``ratio_ours_over_bfcl=<x>`` (goal <= 1.0).
"""
from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-bench-"))

from dipo_tools.eval.bfcl import check_multi_turn_entry  # noqa: E402
from dipo_tools.eval.bfcl_data import load_category  # noqa: E402
from dipo_tools.eval.bfcl_reference import reference_multi_turn_check  # noqa: E402

CATS = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]


def main(repeats: int = 3) -> None:
    data = []
    for c in CATS:
        entries, answers = load_category(c)
        data += [(e, a["ground_truth"], [[t] if t else [] for t in a["ground_truth"]]) for e, a in zip(entries, answers)]
    # warm both paths (imports, backend modules)
    check_multi_turn_entry(*data[0][:1], data[0][2], data[0][1])
    reference_multi_turn_check(data[0][0], data[0][2], data[0][1])
    best_ours = best_ref = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ours = [check_multi_turn_entry(e, d, gt) for e, gt, d in data]
        best_ours = min(best_ours, time.perf_counter() - t)
        t = time.perf_counter()
        ref = [reference_multi_turn_check(e, d, gt) for e, gt, d in data]
        best_ref = min(best_ref, time.perf_counter() - t)
        if ours != ref:
            bad = [e["id"] for (e, _, _), a, b in zip(data, ours, ref) if a != b]
            raise SystemExit(f"verdicts differ on {len(bad)} entries, e.g. {bad[:5]}")
    valid = sum(r["valid"] for r in ours)
    print(f"entries={len(data)} valid={valid} same_verdicts=True")
    print(f"ours_s={best_ours:.3f} bfcl_s={best_ref:.3f} (best of {repeats})")
    print(f"ratio_ours_over_bfcl={best_ours / best_ref:.3f}")


if __name__ == "__main__":
    main()
