"""Single-process RL engine (CPU or one GPU) on the same parts as the verl path.

One step::

    tasks --(tool_envs.runner.run_episode x G, batched HF generate)--> trajectories
          --(reward.multi_turn / reward.toolrl / reward.math)--> scores, success, components
          --(dipo_tools.dipo.compute_dipo_advantages)--> per-response advantages + DiPO stats
          --(verl core_algos policy loss + agg_loss, AdamW, grad clip)--> updated policy

GRPO and DAPO runs go through the same DiPO function with the reallocation term disabled, so every run logs
the same diagnostics (extreme-group fractions, tau*, quadrants). DAPO additionally drops groups whose
score has zero variance (dynamic sampling) before the update.

This module is the loop; its parts live beside it: ``data`` (tasks, sampling order), ``scoring`` (reward
adapter), ``update`` (packing, PPO step), ``warmup`` (oracle episodes, SFT), ``checkpoints``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tool_envs import env_for_task
from tool_envs.chat import ChatRenderer
from tool_envs.runner import RunnerConfig, run_episode

from dipo_tools.dipo import DiPOState, classify_groups, compute_dipo_advantages, group_codes, response_log_ppl
from dipo_tools.engines import checkpoints, warmup
from dipo_tools.engines.checkpoints import CKPT_NAME, latest_checkpoint
from dipo_tools.engines.config import LocalConfig
from dipo_tools.engines.data import (TaskSampler, configure_tools, load_tasks_for, render_corpus,
                                     unseen_request_tasks)
from dipo_tools.engines.generation import BatchedGenerator
from dipo_tools.engines.metrics import MetricsLogger, plot_metrics, progress_bar, read_metrics
from dipo_tools.engines.scoring import Scored, make_scorer, rollout_metrics, score_all, toolrl_ground_truth
from dipo_tools.engines.update import PackedBatch, pack_trajectories, policy_update, token_logprobs
from dipo_tools.models import build_tiny_model, build_tiny_tokenizer

# The parts' public names, importable from here as before the split (scripts, tests, the demo, sweeps).
__all__ = ["CKPT_NAME", "LocalEngine", "PackedBatch", "Scored", "TaskSampler", "TrainingInputError",
           "configure_tools", "latest_checkpoint", "load_tasks_for", "make_scorer", "pack_trajectories",
           "policy_update", "render_corpus", "run_training", "token_logprobs", "toolrl_ground_truth",
           "unseen_request_tasks"]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)



class LocalEngine:
    """Train a causal LM on tool tasks with DiPO / GRPO / DAPO in one process.

    Pass ``tokenizer``/``model``/``tasks`` to reuse objects (tests, the demo's shared warm-up); otherwise they
    are built from the config.
    """

    def __init__(self, cfg: LocalConfig, *, tokenizer=None, model=None, train_tasks=None, eval_tasks=None,
                 env=None, log: bool = True, extra_eval: dict[str, Sequence[Any]] | None = None) -> None:
        self.cfg = cfg
        configure_tools(cfg)
        self.extra_eval = dict(extra_eval or {})  # more evaluation sets, logged as eval_<name>/...
        if cfg.trainer.torch_threads:
            torch.set_num_threads(cfg.trainer.torch_threads)
        self._seed_all(cfg.trainer.seed)
        if train_tasks is None:
            train_tasks, eval_tasks_loaded, env_loaded = load_tasks_for(cfg)
            eval_tasks = eval_tasks if eval_tasks is not None else eval_tasks_loaded
            env = env or env_loaded
        self.train_tasks = list(train_tasks)
        self.eval_tasks = list(eval_tasks or [])
        self.default_env = env
        self._env_cache: dict[tuple, Any] = {}
        self.device = _device(cfg.model.device)
        self.tokenizer, self.model = self._build_model(tokenizer, model)
        self.model.to(self.device)
        if cfg.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.actor.lr, betas=tuple(cfg.actor.betas),
                                           weight_decay=cfg.actor.weight_decay)
        self.dipo_config = cfg.algorithm.dipo
        self.dipo_state = DiPOState()
        self.sampler = TaskSampler(len(self.train_tasks), cfg.data.seed)
        self.step = 0
        self.generator = BatchedGenerator(self.model, self.tokenizer, max_batch=cfg.rollout.max_batch,
                                          default_max_new_tokens=cfg.rollout.max_new_tokens)
        self.scorer = make_scorer(cfg)
        self.out_dir = cfg.trainer.output_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.logger = MetricsLogger(self.out_dir, cfg.trainer.tensorboard, cfg.trainer.wandb_project,
                                    config=dataclasses.asdict(cfg)) if log else None
        self._perm_gen = torch.Generator().manual_seed(cfg.trainer.seed + 17)

    # -- setup
    @staticmethod
    def _seed_all(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def _build_model(self, tokenizer, model):
        mc = self.cfg.model
        dtype = getattr(torch, mc.dtype)
        if model is not None:
            if tokenizer is None:
                raise ValueError("LocalEngine: pass the tokenizer together with the model")
            return tokenizer, model
        if mc.path:
            if not os.path.isdir(mc.path):
                raise ValueError(f"model.path={mc.path!r} is not a local directory; point it at a saved HF model "
                                 "(no hub downloads at run time)")
            tok = tokenizer or AutoTokenizer.from_pretrained(mc.path)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            return tok, AutoModelForCausalLM.from_pretrained(mc.path, dtype=dtype)
        if tokenizer is None:
            corpus = render_corpus(self.train_tasks, self.default_env) if mc.tokenizer_corpus_tasks else None
            tokenizer = build_tiny_tokenizer(corpus=corpus, vocab_size=mc.vocab_size, seed=self.cfg.trainer.seed)
        return tokenizer, build_tiny_model(tokenizer, preset=mc.preset, seed=self.cfg.trainer.seed).to(dtype)

    def env_for(self, task):
        key = tuple(task.envs) if task.envs else ("__default__",)
        if key not in self._env_cache:
            if task.envs:
                self._env_cache[key] = env_for_task(task)
            else:
                self._env_cache[key] = self.default_env
        return self._env_cache[key]

    def runner_config(self) -> RunnerConfig:
        """The episode runner's settings (``rollout.runner``, completed from the rollout section)."""
        return self.cfg.rollout.runner

    def renderer(self, rc):
        """One chat renderer per engine: probing the template once instead of per episode."""
        if getattr(self, "_renderer", None) is None:
            self._renderer = ChatRenderer(self.tokenizer, dict(rc.chat_template_kwargs), rc.stop_token_ids)
        return self._renderer

    # -- rollout
    def sampling_params(self, temperature: float) -> dict:
        r = self.cfg.rollout
        p: dict = {"temperature": temperature}
        if temperature > 0:
            p.update(top_p=r.top_p, top_k=r.top_k)
        return p

    def rollout(self, tasks: Sequence[Any], n: int, temperature: float, generate=None) -> list[Any]:
        """``n`` trajectories per task (task-major order), all episodes run concurrently and batched."""
        rc = self.runner_config()
        params = self.sampling_params(temperature)
        gen = generate or self.generator
        renderer = self.renderer(rc)
        params["stop_token_ids"] = sorted(renderer.stops)

        async def _all():
            coros = [run_episode(tokenizer=self.tokenizer, env=self.env_for(t), task=t, generate=gen,
                                 sampling_params=params, config=rc, renderer=renderer)
                     for t in tasks for _ in range(n)]
            if isinstance(gen, BatchedGenerator):
                return await gen.run_episodes(coros, lockstep=self.cfg.rollout.reproducible_batches)
            return await asyncio.gather(*coros)

        return list(asyncio.run(_all()))


    def score(self, trajs, tasks_rep) -> list[Scored]:
        return score_all(self.scorer, trajs, tasks_rep, self.step)

    # -- one RL step
    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        g = cfg.rollout.group_size
        timings: dict[str, float] = {}
        idx = self.sampler.next(cfg.rollout.tasks_per_step)
        tasks = [self.train_tasks[i] for i in idx]

        t0 = time.perf_counter()
        gen_before = self.generator.seconds if hasattr(self.generator, "seconds") else 0.0
        trajs = self.rollout(tasks, g, cfg.rollout.temperature)
        t_roll = time.perf_counter() - t0
        t_gen = self.generator.seconds - gen_before
        timings["time/generation"] = t_gen
        timings["time/environment"] = max(t_roll - t_gen, 0.0)

        t0 = time.perf_counter()
        tasks_rep = [t for t in tasks for _ in range(g)]
        scored = self.score(trajs, tasks_rep)
        timings["time/reward"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        scores = torch.tensor([s.score for s in scored], dtype=torch.float32)
        success = torch.tensor([s.success for s in scored], dtype=torch.bool)
        group_ids = torch.arange(len(tasks)).repeat_interleave(g)
        packed = pack_trajectories(trajs, self.tokenizer.pad_token_id)
        log_ppl = response_log_ppl(packed.old_logprobs, packed.loss_mask)
        adv, stats = compute_dipo_advantages(scores, success, log_ppl, group_ids, self.dipo_state, self.dipo_config)
        keep = torch.ones(len(trajs), dtype=torch.bool)
        if cfg.algorithm.use_dynamic_sampling:  # DAPO: zero-variance groups carry no signal -> drop them
            groups = group_codes(group_ids)
            flat_hard, flat_easy = classify_groups(scores, success, groups, extreme_by="score")
            keep = ~(flat_hard | flat_easy)[groups.codes]
        timings["time/advantage"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        if keep.any() and packed.loss_mask[keep].sum() > 0:
            sub = packed.select(keep)
            metrics.update(policy_update(self.model, self.optimizer, sub, adv[keep], cfg, self._perm_gen))
        else:
            metrics["actor/skipped_empty"] = 1.0
        timings["time/update"] = time.perf_counter() - t0
        self.step += 1

        metrics.update(rollout_metrics(trajs, scored, prefix="train"))
        metrics.update({f"dipo/{k}": v for k, v in stats.items() if v is not None})
        metrics["train/kept_fraction"] = float(keep.float().mean())
        metrics["train/advantage_abs_mean"] = float(adv.abs().mean())
        metrics.update(timings)
        metrics["time/step"] = sum(timings.values())
        return metrics

    def evaluate(self, tasks: Sequence[Any] | None = None, prefix: str = "eval") -> dict[str, float]:
        """Greedy (``rollout.eval_temperature``) episodes on held-out tasks, plus every ``extra_eval`` set."""
        if tasks is None:
            sets = [("eval", self.eval_tasks)] + [(f"eval_{k}", v) for k, v in self.extra_eval.items()]
        else:
            sets = [(prefix, tasks)]
        t0 = time.perf_counter()
        m: dict[str, float] = {}
        for name, ts in sets:
            if ts:
                trajs = self.rollout(ts, 1, self.cfg.rollout.eval_temperature)
                m.update(rollout_metrics(trajs, self.score(trajs, ts), prefix=name))
        if m:
            m["time/eval"] = time.perf_counter() - t0
        return m

    # -- supervised warm-up through the same runner
    def sft_warmup(self, steps: int | None = None, progress: bool | None = None) -> list[float]:
        """Teach the call format: oracle episodes recorded by the runner, cross-entropy on generated tokens."""
        steps = self.cfg.sft.steps if steps is None else steps
        if steps <= 0:
            return []
        return warmup.sft_warmup(self.model, self.oracle_trajectories(self.train_tasks), self.cfg.sft, steps=steps,
                                 pad_id=self.tokenizer.pad_token_id, device=self.device, seed=self.cfg.trainer.seed,
                                 progress=self.cfg.trainer.progress if progress is None else progress)

    def oracle_trajectories(self, tasks: Sequence[Any]) -> list[Any]:
        """Run each task through the runner with a scripted ``generate`` that emits the ground-truth calls."""
        rc = self.runner_config()
        return warmup.oracle_trajectories(tasks, tokenizer=self.tokenizer, env_for=self.env_for, runner=rc,
                                          renderer=self.renderer(rc), sampling_params=self.sampling_params(1.0),
                                          final_text=self.cfg.sft.final_text)

    # -- checkpoints
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dipo_state": self.dipo_state.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": self.step,
            "rng": checkpoints.capture_rng(self._perm_gen),
            "config": dataclasses.asdict(self.cfg),
        }

    def save_checkpoint(self, path: str | None = None) -> str:
        root = os.path.join(self.out_dir, "checkpoints")
        path = checkpoints.save_checkpoint(path or os.path.join(root, f"step_{self.step:06d}"), self.state_dict(),
                                           self.tokenizer)
        checkpoints.prune_checkpoints(root, self.cfg.trainer.keep_checkpoints)
        return path

    def load_checkpoint(self, path: str) -> None:
        s = checkpoints.load_checkpoint_state(path)
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.dipo_state.load_state_dict(s["dipo_state"])
        self.sampler.load_state_dict(s["sampler"])
        self.step = int(s["step"])
        checkpoints.restore_rng(s["rng"], self._perm_gen)

    def latest_checkpoint(self) -> str | None:
        return latest_checkpoint(self.out_dir)

    def save_model(self, path: str) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    # -- loop
    def train(self, total_steps: int | None = None, progress: bool | None = None) -> list[dict]:
        tc = self.cfg.trainer
        total = tc.total_steps if total_steps is None else total_steps
        if tc.resume not in ("none", "", None):
            path = self.latest_checkpoint() if tc.resume == "auto" else tc.resume
            if path:
                self.load_checkpoint(path)
                checkpoints.drop_metrics_after(self.out_dir, self.step)
                print(f"[dipo] resumed from {path} at step {self.step}")
        rows = []
        if self.step == 0 and tc.eval_every and self.eval_tasks:
            rows.append(self._log(self.evaluate()))
        bar = progress_bar(range(self.step, total), f"{self.cfg.algorithm.name} steps",
                        tc.progress if progress is None else progress, initial=self.step, total=total)
        for _ in bar:
            m = self.train_step()
            if tc.eval_every and self.eval_tasks and (self.step % tc.eval_every == 0 or self.step == total):
                m.update(self.evaluate())
            rows.append(self._log(m))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(reward=f"{m['train/reward']:.2f}", succ=f"{m['train/success']:.2f}",
                                nz=f"{m.get('dipo/frac_nonzero_adv', float('nan')):.2f}")
            if tc.save_every and self.step % tc.save_every == 0:
                self.save_checkpoint()
        return rows

    def _log(self, m: dict) -> dict:
        m = dict(m)
        if self.logger is not None:
            self.logger.log(m, self.step)
        m["step"] = self.step
        return m

    def finish(self) -> list[str]:
        """Final checkpoint, HF model export and plots; returns the plot paths."""
        self.save_checkpoint()
        self.save_model(os.path.join(self.out_dir, "final_model"))
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if self.cfg.trainer.plots and os.path.exists(os.path.join(self.out_dir, "metrics.jsonl")):
            return plot_metrics(read_metrics(os.path.join(self.out_dir, "metrics.jsonl")), self.out_dir)
        return []

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None


class TrainingInputError(ValueError):
    """The run cannot start: a task file, an environment or the model path is wrong (one-line message)."""


def run_training(cfg: LocalConfig) -> dict:
    """Entry point of ``dipo train`` with ``engine: local``: warm-up (optional), RL, final save and plots."""
    resume = cfg.trainer.resume
    if resume not in ("none", "auto", "", None) and not os.path.exists(resume):
        raise TrainingInputError(f"trainer.resume={resume}: no checkpoint there; give a checkpoint folder, auto or none")
    try:
        eng = LocalEngine(cfg)
    except (ValueError, KeyError, OSError, ImportError) as e:  # bad data/env/model input, before any work
        raise TrainingInputError(e.args[0] if isinstance(e, KeyError) and e.args else str(e)) from e
    try:
        ckpt = None if resume in ("none", "", None) else (eng.latest_checkpoint() if resume == "auto" else resume)
        if resume == "auto" and ckpt is None:
            print(f"[dipo] trainer.resume=auto: no checkpoint in {os.path.join(cfg.trainer.output_dir, 'checkpoints')}; "
                  "starting from scratch")
        if cfg.sft.steps and ckpt is None:  # a checkpoint already holds the warmed-up weights
            losses = eng.sft_warmup()
            print(f"[dipo] warm-up: {len(losses)} steps, final loss {losses[-1]:.3f}")
        rows = eng.train()
        plots = eng.finish()
    finally:
        eng.close()
    return {"steps": eng.step, "rows": rows, "plots": plots, "output_dir": cfg.trainer.output_dir,
            "checkpoint": eng.latest_checkpoint(), "final_model": os.path.join(cfg.trainer.output_dir, "final_model"),
            "metrics": os.path.join(cfg.trainer.output_dir, "metrics.jsonl")}
