"""One RL step of our local engine vs TRL's GRPOTrainer on equal work, alternating in one process.

Both start from the same weights: the demo's tiny Qwen2 (configs/local/demo.yaml) after a short supervised
warm-up, so completions are tool calls. Each RL step, for both: the same 8 inventory prompts (identical
token ids) x G=8, every completion exactly ``--length`` new tokens (stop tokens held back: vLLM's
``min_tokens`` for ours, ``min_new_tokens`` for TRL), temperature 1, the demo's learning rate, clip
0.2/0.28, token-mean loss, ``actor.ppo_epochs`` passes over the whole batch (TRL: ``num_iterations``), no
KL term, grad clip 1, constant learning rate. Ours runs as shipped otherwise: the episode runner executes
the calls in the ``inventory`` environment, the multi-turn reward scores the episodes, DiPO computes the
advantages, verl's policy loss updates; TRL scores completions with our ToolRL reward (no environment).

The two alternate: a TRL callback runs one of our steps after each of TRL's generation cycles, so both see
the same machine load. The first round warms both up and is not counted.

    python scripts/bench_engine_vs_trl.py [--rounds 6] [--length 64] [--warmup 60] [key=value overrides of ours]

Needs TRL, from the pinned ``bench`` extra; without it the script says how to install it and exits 2.
The last line is ``ratio_ours_over_trl=<median seconds per step, ours / TRL>``.
"""
from __future__ import annotations

import argparse
import copy
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INSTALL = 'pip install -c requirements/constraints.txt -e ".[bench]"'
PHASES = ("generation", "environment", "reward", "advantage", "update")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="timed RL steps of each trainer (after one warm-up round)")
    ap.add_argument("--length", type=int, default=64, help="new tokens of every completion")
    ap.add_argument("--warmup", type=int, default=60, help="supervised steps before timing (shared start)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of our config (configs/local/demo.yaml)")
    a = ap.parse_args(argv)
    try:
        import trl
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        print(f"bench_engine_vs_trl: TRL is not installed. It is an optional benchmark dependency, pinned in the "
              f"'bench' extra; install it with:\n    {INSTALL}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from dipo_tools.engines.config import load_config
    from dipo_tools.engines.local import LocalEngine, toolrl_ground_truth
    from reward import toolrl

    length = a.length
    out = tempfile.mkdtemp(prefix="bench_vs_trl_")
    cfg = load_config(ROOT / "configs" / "local" / "demo.yaml", [
        f"trainer.output_dir={out}/ours", "trainer.progress=false", "trainer.tensorboard=false", "data.num_eval=0",
        "rollout.tasks_per_step=8", "rollout.group_size=8", "rollout.max_assistant_turns=1",
        f"rollout.max_new_tokens={length}", f"rollout.max_response_tokens={max(length, 192)}", *a.overrides])
    ac = cfg.actor

    # The shared start: the demo's tokenizer and model after a short warm-up on its 512 training tasks.
    warm = LocalEngine(cfg, log=False)
    t0 = time.perf_counter()
    warm.sft_warmup(a.warmup, progress=False)
    print(f"warm-up: {a.warmup} supervised steps in {time.perf_counter() - t0:.1f}s")
    tok, tasks = warm.tokenizer, warm.train_tasks[: cfg.rollout.tasks_per_step]

    class FixedLength(LocalEngine):
        """Ours, with every completion exactly ``length`` tokens (the runner caps it; min_tokens fills it)."""

        def sampling_params(self, temperature: float) -> dict:
            return {**super().sampling_params(temperature), "min_tokens": length}

    ours = FixedLength(cfg, tokenizer=tok, model=copy.deepcopy(warm.model), train_tasks=tasks,
                       env=warm.default_env, log=False)
    renderer = ours.renderer(ours.runner_config())
    rows = []
    for t in tasks:
        messages = [{"role": "system", "content": cfg.rollout.system_prompt}] + [dict(m) for m in t.turns[0]]
        ids = renderer.prompt_ids(messages, None)
        text = tok.decode(ids)
        if tok(text)["input_ids"] != ids:
            raise SystemExit(f"bench_engine_vs_trl: task {t.id}: TRL would tokenise the prompt differently")
        rows.append({"prompt": text, "ground_truth": toolrl_ground_truth(t)})

    def toolrl_score(prompts, completions, ground_truth, **_):
        return [toolrl.toolrl_reward(c, gt).score for c, gt in zip(completions, ground_truth)]

    epochs, rounds = ac.ppo_epochs, a.rounds + 1
    trl_args = GRPOConfig(
        output_dir=f"{out}/trl", use_cpu=True, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True,
        logging_steps=10**6, seed=cfg.trainer.seed, dataloader_num_workers=0, shuffle_dataset=False,
        per_device_train_batch_size=len(tasks) * cfg.rollout.group_size, gradient_accumulation_steps=1,
        num_generations=cfg.rollout.group_size, max_completion_length=length,
        generation_kwargs={"min_new_tokens": length}, temperature=cfg.rollout.temperature, top_p=1.0, top_k=0,
        learning_rate=ac.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=ac.weight_decay,
        adam_beta1=ac.betas[0], adam_beta2=ac.betas[1], max_grad_norm=ac.grad_clip,
        num_iterations=epochs, epsilon=ac.clip_ratio_low, epsilon_high=ac.clip_ratio_high, loss_type="dapo",
        beta=0.0, scale_rewards="group", max_steps=rounds * epochs)

    times: dict[str, list[float]] = {"ours": [], "trl": []}
    phases: list[dict] = []

    class Alternate(TrainerCallback):
        """After each TRL generation cycle (``epochs`` optimizer steps), time one step of ours."""

        def on_train_begin(self, args, state, control, **kw):
            self.mark = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % epochs:
                return
            times["trl"].append(time.perf_counter() - self.mark)
            t = time.perf_counter()
            phases.append(ours.train_step())
            times["ours"].append(time.perf_counter() - t)
            print(f"round {len(times['ours'])}: ours {times['ours'][-1]:.2f}s  trl {times['trl'][-1]:.2f}s"
                  + ("  (warm-up, not counted)" if len(times["ours"]) == 1 else ""), flush=True)
            self.mark = time.perf_counter()

    trainer = GRPOTrainer(model=copy.deepcopy(warm.model), reward_funcs=toolrl_score, args=trl_args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Alternate()])
    trainer.train()

    ours_s, trl_s = statistics.median(times["ours"][1:]), statistics.median(times["trl"][1:])
    n = len(phases) - 1
    print(f"TRL {trl.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{len(tasks)} prompts x G={cfg.rollout.group_size}, {length} new tokens each, {epochs} epochs, "
          f"lr {ac.lr}, {a.rounds} timed rounds")
    print(f"ours: {ours_s:.2f}s per step (median); TRL: {trl_s:.2f}s per step (median)")
    for p in PHASES:
        print(f"  ours {p:12s} {sum(m[f'time/{p}'] for m in phases[1:]) / n:7.3f}s")
    print(f"ratio_ours_over_trl={ours_s / trl_s:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
