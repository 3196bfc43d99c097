"""Time per RL step of the local engine, split into generation / environment / reward / advantage / update.

Uses the demo's model and batch (configs/local/demo.yaml: tiny Qwen2, 8 tasks x G=8 on `inventory`) after a
short supervised warm-up, so response lengths look like the demo's. Prints seconds and shares per phase;
the last line is ``generation_share=<x>``.

``--compare-batching`` instead times generation with reproducible (lockstep) batches against the
opportunistic batcher they replaced (``rollout.reproducible_batches=false``: a batch of whatever episodes
are waiting), alternating the two step by step on one engine so both see the same model drift and machine
load; the last line is ``ratio_lockstep_over_opportunistic=<x>`` (generation seconds per generated token).

    python scripts/bench_engine.py [--steps 5] [--warmup 60] [--compare-batching] [key=value overrides]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("generation", "environment", "reward", "advantage", "update")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=60, help="supervised steps before timing")
    ap.add_argument("--compare-batching", action="store_true",
                    help="lockstep vs opportunistic generation batches instead of the phase split")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from dipo_tools.engines.config import load_config
    from dipo_tools.engines.local import LocalEngine

    out = tempfile.mkdtemp(prefix="bench_engine_")
    cfg = load_config(ROOT / "configs" / "local" / "demo.yaml",
                      [f"trainer.output_dir={out}", "trainer.progress=false", "trainer.tensorboard=false",
                       "data.num_eval=0", *a.overrides])
    eng = LocalEngine(cfg, log=False)
    t0 = time.perf_counter()
    eng.sft_warmup(a.warmup, progress=False)
    print(f"warm-up: {a.warmup} steps in {time.perf_counter() - t0:.1f}s")
    eng.train_step()  # one untimed step (allocator, template probing)
    if a.compare_batching:
        return compare_batching(eng, cfg, a.steps)
    totals = dict.fromkeys(PHASES, 0.0)
    wall = 0.0
    for _ in range(a.steps):
        t = time.perf_counter()
        m = eng.train_step()
        wall += time.perf_counter() - t
        for p in PHASES:
            totals[p] += m[f"time/{p}"]
    n = a.steps
    batch = cfg.rollout.tasks_per_step * cfg.rollout.group_size
    print(f"model preset={cfg.model.preset}, batch={cfg.rollout.tasks_per_step}x{cfg.rollout.group_size}={batch} "
          f"trajectories, {n} timed steps, {wall / n:.2f}s per step")
    s = sum(totals.values()) or 1.0
    for p in PHASES:
        print(f"{p:12s} {totals[p] / n:7.3f}s  {totals[p] / s:6.1%}")
    print(f"generation_share={totals['generation'] / s:.3f}")
    return 0


def compare_batching(eng, cfg, steps: int) -> int:
    """Generation seconds per generated token, lockstep vs opportunistic batches, alternating per step."""
    secs = {True: 0.0, False: 0.0}
    tokens = {True: 0.0, False: 0.0}
    batch = cfg.rollout.tasks_per_step * cfg.rollout.group_size
    for _ in range(steps):
        for lockstep in (True, False):
            cfg.rollout.reproducible_batches = lockstep  # read at each rollout
            m = eng.train_step()
            secs[lockstep] += m["time/generation"]
            tokens[lockstep] += m["train/response_tokens"] * batch
    for lockstep, name in ((True, "lockstep"), (False, "opportunistic")):
        print(f"{name:13s} {secs[lockstep] / steps:7.3f}s generation per step, "
              f"{tokens[lockstep] / steps:7.0f} tokens, {1e3 * secs[lockstep] / tokens[lockstep]:.3f} ms/token")
    ratio = (secs[True] / tokens[True]) / (secs[False] / tokens[False])
    print(f"ratio_lockstep_over_opportunistic={ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
