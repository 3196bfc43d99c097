"""Pilot a task before putting it in a sweep: does the warm-up leave the regime DiPO targets, what does a
run cost, and how many held-out tasks does a comparison need?

    python -m dipo_tools.sweep.calibrate --config configs/local/study_inventory.yaml [--rl-steps 5] [k=v ...]

One process, one thread (as a sweep run): warm-up, greedy held-out evaluation, G sampled answers on held-out
and on training tasks (share of all-right / all-wrong groups, in-group score variance), a few RL steps
(seconds per step, CPU seconds), and the power arithmetic for the held-out set. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time

import torch

from dipo_tools.engines.config import load_config
from dipo_tools.engines.local import LocalEngine
from dipo_tools.sweep.stats import t_quantile


def group_stats(engine, tasks, group_size: int, temperature: float) -> dict:
    """G sampled episodes per task: shares of easy (all succeed), hard (all fail) and mixed groups."""
    trajs = engine.rollout(tasks, group_size, temperature)
    scored = engine.score(trajs, [t for t in tasks for _ in range(group_size)])
    easy = hard = 0
    variances = []
    for g in range(len(tasks)):
        grp = scored[g * group_size:(g + 1) * group_size]
        right = sum(s.success for s in grp)
        easy += right == group_size
        hard += right == 0
        mean = sum(s.score for s in grp) / group_size
        variances.append(sum((s.score - mean) ** 2 for s in grp) / (group_size - 1))
    n = max(len(tasks), 1)
    return {"tasks": len(tasks), "success": sum(s.success for s in scored) / max(len(scored), 1),
            "frac_easy": easy / n, "frac_hard": hard / n, "frac_mixed": 1 - (easy + hard) / n,
            "mean_in_group_score_var": sum(variances) / n}


def minimum_detectable(p: float, n_tasks: int, seeds: int, sd_seed_diff: float = 0.0) -> float:
    """Smallest paired success difference a two-sided 5 % paired t-test over ``seeds`` detects with 80 % power.

    Per seed, the difference of two success rates on the same ``n_tasks`` held-out tasks has evaluation
    noise at most ``sqrt(2 p (1-p) / n_tasks)`` (independent answers; answers that agree across variants
    only lower it). Training adds ``sd_seed_diff`` (measured from pilot seeds, 0 = ignore). The paired
    t-test on ``seeds`` differences needs ``(t_0.975 + t_0.8) * sd / sqrt(seeds)``.
    """
    sd = math.sqrt(2 * p * (1 - p) / n_tasks + sd_seed_diff ** 2)
    df = seeds - 1
    return (t_quantile(0.975, df) + t_quantile(0.8, df)) * sd / math.sqrt(seeds)


def calibrate(config: str, overrides: list[str], rl_steps: int, group_tasks: int) -> dict:
    out = tempfile.mkdtemp(prefix="dipo-calibrate-")
    cfg = load_config(config, [*overrides, f"trainer.output_dir={out}", "trainer.torch_threads=1",
                               "trainer.progress=false", "trainer.tensorboard=false", "trainer.plots=false",
                               "trainer.eval_every=0"])
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    eng = LocalEngine(cfg, log=False)
    report: dict = {"config": config, "overrides": overrides, "setup_seconds": time.perf_counter() - t0,
                    "train_tasks": len(eng.train_tasks), "eval_tasks": len(eng.eval_tasks),
                    "eval_distinct_texts": len({tuple(t.user_texts()) for t in eng.eval_tasks}),
                    "train_distinct_texts": len({tuple(t.user_texts()) for t in eng.train_tasks})}
    t0 = time.perf_counter()
    losses = eng.sft_warmup(progress=False)
    report.update(warmup_steps=len(losses), warmup_seconds=time.perf_counter() - t0,
                  warmup_loss=[losses[0], losses[-1]] if losses else None)
    t0 = time.perf_counter()
    ev = eng.evaluate()
    report.update(eval_seconds=time.perf_counter() - t0, heldout_success=ev.get("eval/success"),
                  heldout_reward=ev.get("eval/reward"))
    g, temp = cfg.rollout.group_size, cfg.rollout.temperature
    report["heldout_groups"] = group_stats(eng, eng.eval_tasks[:group_tasks], g, temp)
    report["train_groups"] = group_stats(eng, eng.train_tasks[:group_tasks], g, temp)
    if rl_steps:
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        rows = [eng.train_step() for _ in range(rl_steps)]
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        report.update(rl_seconds_per_step=(time.perf_counter() - t0) / rl_steps,
                      rl_cpu_seconds_per_step=(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / rl_steps,
                      rl_update_share=sum(r["time/update"] for r in rows) / max(sum(r["time/step"] for r in rows), 1e-9),
                      rl_train_success=[round(r["train/success"], 3) for r in rows],
                      rl_frac_extreme=[round(r["dipo/frac_easy"] + r["dipo/frac_hard"], 3) for r in rows])
    p = report["heldout_success"] if report["heldout_success"] is not None else 0.5
    p = min(max(p, 0.05), 0.95)
    n = max(report["eval_distinct_texts"], 1)
    report["power"] = {
        "assumed_p": p, "n_distinct_heldout": n,
        "eval_se_of_one_rate": math.sqrt(p * (1 - p) / n),
        "mde_5_seeds_eval_noise_only": minimum_detectable(p, n, 5),
        "mde_10_seeds_eval_noise_only": minimum_detectable(p, n, 10),
    }
    eng.close()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dipo_tools.sweep.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--rl-steps", type=int, default=5)
    ap.add_argument("--group-tasks", type=int, default=64, help="held-out and training tasks sampled G times")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    report = calibrate(a.config, a.overrides, a.rl_steps, a.group_tasks)
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
