"""Benchmark: DiPO advantages vs verl's GRPO on the same batch, in one run.

DiPO works on a queue of 2 x 65,536 responses (the previous batch is already queued) in groups of 8;
the reference is verl 0.9.1's ``compute_grpo_outcome_advantage`` on the same 65,536 responses. Also
printed, for context: verl's ``grpo_vectorized`` estimator. Last line: ``ratio_dipo_over_grpo=<x>``.

    python scripts/bench_dipo.py [--batch 65536] [--group 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn

from dipo_tools.dipo import DiPOConfig, DiPOState
from dipo_tools.verl_ext.estimator import compute_dipo_outcome_advantage


def make_batch(b: int, g: int, t: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, t)
    acc = (torch.rand(b // g, 1, generator=gen) < 0.5) | (torch.rand(b // g, g, generator=gen) < 0.3)
    acc = acc.reshape(-1).float()
    rewards = torch.zeros(b, t)
    rewards[:, -1] = acc
    old_lp = -torch.rand(b, t, generator=gen) * (2 - acc).unsqueeze(1)
    uids = np.array([f"{seed}-{i // g}" for i in range(b)], dtype=object)
    return rewards, mask, uids, old_lp, acc.numpy()


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=4, help="response length (only broadcast cost)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)

    previous = make_batch(args.batch, args.group, args.tokens, seed=0)
    current = make_batch(args.batch, args.group, args.tokens, seed=1)
    rewards, mask, uids, old_lp, acc = current
    config = {"dipo": {}}

    def primed_state() -> DiPOState:
        state = DiPOState()
        r, m, u, lp, a = previous
        compute_dipo_outcome_advantage(r, m, u, old_log_probs=lp, acc=a, state=state, config=config)
        return state

    states = [primed_state() for _ in range(args.repeats)]
    stats: dict = {}

    def run_dipo():
        compute_dipo_outcome_advantage(rewards, mask, uids, old_log_probs=old_lp, acc=acc, state=states.pop(),
                                       config=config, stats_out=stats)

    t_dipo = timed(run_dipo, args.repeats)
    t_grpo = timed(lambda: compute_grpo_outcome_advantage(rewards, mask, uids), args.repeats)
    vec = get_adv_estimator_fn("grpo_vectorized")
    t_vec = timed(lambda: vec(rewards, mask, uids), args.repeats)

    print(f"responses={args.batch} group={args.group} queue={stats['queue_size']} "
          f"disentangled={stats['disentangled']} realloc_hard={stats['n_realloc_hard']} "
          f"realloc_easy={stats['n_realloc_easy']}")
    print(f"dipo (queue fit + BRR + two GRPO terms): {t_dipo * 1e3:9.1f} ms")
    print(f"verl compute_grpo_outcome_advantage:     {t_grpo * 1e3:9.1f} ms")
    print(f"verl grpo_vectorized (context):          {t_vec * 1e3:9.1f} ms")
    print(f"ratio_dipo_over_grpo_vectorized={t_dipo / t_vec:.3f}")
    print(f"ratio_dipo_over_grpo={t_dipo / t_grpo:.3f}")


if __name__ == "__main__":
    main()
