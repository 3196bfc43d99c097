"""Single-process RL engine (CPU or one GPU) on the same parts as the verl path.

One step::

    tasks --(tool_envs.runner.run_episode x G, batched HF generate)--> trajectories
          --(reward.multi_turn / reward.toolrl)--> scores, success, components
          --(dipo_tools.dipo.compute_dipo_advantages)--> per-response advantages + DiPO stats
          --(verl core_algos policy loss + agg_loss, AdamW, grad clip)--> updated policy

GRPO and DAPO runs go through the same DiPO function with the reallocation term disabled, so every run logs
the same diagnostics (extreme-group fractions, tau*, quadrants). DAPO additionally drops groups whose
score has zero variance (dynamic sampling) before the update.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dipo_tools.engines.config import LocalConfig
from dipo_tools.engines.generation import BatchedGenerator
from dipo_tools.engines.metrics import MetricsLogger, plot_metrics, read_metrics

CKPT_NAME = "state.pt"


# ----------------------------------------------------------------------------------------------- data
class TaskSampler:
    """Deterministic epoch-wise shuffling with a resumable position (epoch, index)."""

    def __init__(self, n: int, seed: int) -> None:
        if n <= 0:
            raise ValueError("TaskSampler: no training tasks")
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0
        self._order = self._perm()

    def _perm(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._perm()
            out.append(self._order[self.pos])
            self.pos += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "n": self.n, "seed": self.seed}

    def load_state_dict(self, s: dict) -> None:
        if s["n"] != self.n:
            raise ValueError(f"checkpoint was made with {s['n']} training tasks, this run has {self.n}")
        self.seed, self.epoch, self.pos = s["seed"], s["epoch"], s["pos"]
        self._order = self._perm()


def configure_tools(cfg: LocalConfig) -> None:
    """Point ``tool_envs`` at this run's environment folders and executor settings (process-wide)."""
    from tool_envs import configure_executor, set_env_path

    d = cfg.data
    task_dirs = [os.path.dirname(os.path.abspath(f)) for f in (d.train_file, d.eval_file) if f]
    set_env_path(list(dict.fromkeys([*d.env_path, *task_dirs])))
    if cfg.rollout.tool_executor:
        configure_executor(dict(cfg.rollout.tool_executor))


def load_tasks_for(cfg: LocalConfig):
    """(train_tasks, eval_tasks, env_or_None) from files or the env's task generator."""
    from tool_envs import tasks as task_mod

    configure_tools(cfg)
    d = cfg.data
    env = None
    if d.env is not None:
        from tool_envs import load_env

        env = load_env(d.env)

    def generate(n: int, split: str, seed: int):
        from tool_envs.registry import task_generator

        try:
            gen = task_generator(d.env)
        except ValueError as e:
            raise ValueError(f"data: no train_file given and {e}; set data.train_file to a JSONL of tasks") from None
        return list(gen(n, seed=seed, split=split, **d.generator))

    train = task_mod.load_tasks(d.train_file) if d.train_file else generate(d.num_train, "train", d.seed)
    if d.eval_file:
        ev = task_mod.load_tasks(d.eval_file)
        ev = ev[: d.num_eval] if d.num_eval and not d.eval_unseen_texts else ev
    elif d.num_eval:
        ev = generate(d.num_eval, "heldout", d.seed + 7919)
    else:
        ev = []
    if d.eval_unseen_texts and ev:
        pools = [ev] if d.eval_file else [ev, generate(4 * d.num_eval, "heldout", d.seed + 7920),
                                          generate(4 * d.num_eval, "train", d.seed + 104730)]
        ev = unseen_request_tasks(train, pools, d.num_eval or len(ev))
    return list(train), list(ev), env


def unseen_request_tasks(train, pools, limit: int) -> list:
    """Up to ``limit`` tasks, one per distinct request text, none of whose texts occurs in ``train``."""
    seen = {tuple(t.user_texts()) for t in train}
    out = []
    for pool in pools:
        for t in pool:
            key = tuple(t.user_texts())
            if key not in seen and len(out) < limit:
                seen.add(key)
                out.append(t)
    return out


# ------------------------------------------------------------------------------------------ rewards
@dataclass
class Scored:
    score: float
    success: bool
    components: dict[str, float]


def _numeric_fields(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    items = dataclasses.asdict(obj).items() if dataclasses.is_dataclass(obj) else (obj or {}).items()
    for k, v in items:
        if isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(float(v))):
            out[prefix + k] = float(v)
    return out


def toolrl_ground_truth(task) -> str:
    """The ToolRL ground-truth string for a single-turn task (metadata wins, else built from the calls)."""
    gt = (task.metadata or {}).get("toolrl_ground_truth")
    if gt:
        return gt
    calls = (task.gt_calls or [[]])[0]
    body = "\n".join(json.dumps({"name": c.name, "parameters": dict(c.arguments)}) for c in calls)
    return f"<tool_call>\n{body}\n</tool_call>" if calls else ""


def make_scorer(cfg: LocalConfig) -> Callable[[Any, Any, int], Scored]:
    """``scorer(trajectory, task, step) -> Scored`` for the configured reward."""
    name, kwargs = cfg.reward.name, dict(cfg.reward.kwargs)
    if name == "multi_turn":
        from reward import multi_turn

        def score_mt(traj, task, step):
            r = multi_turn.score_episode(traj, task, config=kwargs or None)
            comps = {k: v for k, v in _numeric_fields(r).items() if k not in ("score", "success")}
            comps.update({f"c_{k}": float(v) for k, v in (getattr(r, "components", None) or {}).items()})
            return Scored(float(r.score), bool(r.success), comps)

        return score_mt

    if name == "math":
        from reward.math import MathConfig, math_reward

        mconf = MathConfig.from_mapping(kwargs or None)

        def score_math(traj, task, step):
            steps = [s for turn in traj.turns for s in turn]
            answer = (task.metadata or {}).get("answer")
            r = math_reward(steps[-1].text if steps else "", answer, mconf, sample_id=getattr(task, "id", None))
            return Scored(float(r.score), bool(r.success), {"has_answer": float(r.pred is not None),
                                                              "tool_calls": float(traj.num_tool_calls)})

        return score_math

    from reward import toolrl

    tconf = toolrl.ToolRLConfig(**kwargs) if kwargs else None

    def score_toolrl(traj, task, step):
        steps = [s for turn in traj.turns for s in turn]
        text = steps[0].text if steps else ""
        r = toolrl.toolrl_reward(text, toolrl_ground_truth(task), step=step, config=tconf)
        return Scored(float(r.score), bool(r.success), {"format": float(r.format), "correctness": float(r.correctness)})

    return score_toolrl


# ------------------------------------------------------------------------------------------- update
def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float,
                   keep: int, with_entropy: bool = False):
    """Log-probs of the last ``keep`` tokens of each (left-padded) row at ``temperature``: ``[N, keep]``.

    Only the response window gets logits (``logits_to_keep``): prompts are long and shared, and the
    vocabulary projection + log-softmax over them would dominate the update's time and memory. The
    ``[N, keep, vocab]`` tensors are what a real model's update is made of (151,936 columns for Qwen), so
    the log-prob is ``logit - logsumexp`` (no log-softmax copy) and the entropy, which is only logged, is
    computed without a graph a few rows at a time.
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False, logits_to_keep=keep + 1).logits[:, :-1]
    logits = logits.float() / temperature
    picked = logits.gather(-1, input_ids[:, -keep:].unsqueeze(-1)).squeeze(-1)
    lp = picked - torch.logsumexp(logits, dim=-1)
    if not with_entropy:
        return lp, None
    from verl.utils.torch_functional import entropy_from_logits_with_chunking

    with torch.no_grad():
        flat = logits.detach().reshape(-1, logits.shape[-1])
        return lp, entropy_from_logits_with_chunking(flat, chunk_size=64).view(logits.shape[:-1])


@dataclass
class PackedBatch:
    """Left-padded sequences whose last ``K`` columns hold every response (responses are right-aligned)."""

    input_ids: torch.Tensor  # [N, L]
    attention_mask: torch.Tensor  # [N, L]
    loss_mask: torch.Tensor  # [N, K] 1 on generated response tokens
    old_logprobs: torch.Tensor  # [N, K] sampler log-probs on loss_mask, else 0

    @property
    def keep(self) -> int:
        return self.loss_mask.shape[1]

    def select(self, idx) -> "PackedBatch":
        return PackedBatch(self.input_ids[idx], self.attention_mask[idx], self.loss_mask[idx], self.old_logprobs[idx])


def pack_trajectories(trajs: Sequence[Any], pad_id: int) -> PackedBatch:
    n = len(trajs)
    k = max(max(len(t.response_ids) for t in trajs), 1)
    width = max(len(t.prompt_ids) + len(t.response_ids) for t in trajs)
    width = max(width, k + 1)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    lmask = torch.zeros((n, k), dtype=torch.float32)
    old = torch.zeros((n, k), dtype=torch.float32)
    for i, t in enumerate(trajs):
        seq = list(t.prompt_ids) + list(t.response_ids)
        r = len(t.response_ids)
        ids[i, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        attn[i, width - len(seq):] = 1
        if r:
            lmask[i, k - r:] = torch.tensor(t.response_mask, dtype=torch.float32)
            old[i, k - r:] = torch.tensor(t.response_logprobs, dtype=torch.float32)
    return PackedBatch(ids, attn, lmask, old * lmask)


def policy_update(model, optimizer, batch: PackedBatch, advantages: torch.Tensor, cfg: LocalConfig,
                  generator: torch.Generator | None = None) -> dict[str, float]:
    """PPO-clip epochs with verl's registered policy loss + ``agg_loss``; returns averaged metrics."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.workers.config import FSDPActorConfig

    a = cfg.actor
    temp = cfg.rollout.temperature
    loss_fn = get_policy_loss_fn(a.policy_loss)
    verl_cfg = FSDPActorConfig(strategy="fsdp", clip_ratio=a.clip_ratio_low, clip_ratio_low=a.clip_ratio_low,
                               clip_ratio_high=a.clip_ratio_high, clip_ratio_c=a.clip_ratio_c,
                               loss_agg_mode=a.loss_agg_mode, ppo_mini_batch_size=1,
                               ppo_micro_batch_size_per_gpu=1, rollout_n=1)
    device = next(model.parameters()).device
    n = batch.input_ids.shape[0]
    ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device)
    lmask = batch.loss_mask.to(device)
    adv_tok = advantages.to(device=device, dtype=torch.float32)[:, None].expand_as(lmask) * lmask
    old = batch.old_logprobs.to(device)
    if a.recompute_old_logprobs:
        with torch.no_grad():
            was = model.training
            model.eval()
            old, _ = token_logprobs(model, ids, attn, temp, batch.keep)
            model.train(was)
            old = old.detach() * lmask
    mb = a.mini_batch_size or n
    micro = a.micro_batch_size or mb
    sums: dict[str, float] = {}
    count = 0
    model.train()
    for _ in range(a.ppo_epochs):
        order = torch.randperm(n, generator=generator) if a.ppo_epochs > 1 or mb < n else torch.arange(n)
        for s in range(0, n, mb):
            idx = order[s: s + mb]
            tokens_in_mb = lmask[idx].sum().clamp(min=1)
            optimizer.zero_grad(set_to_none=True)
            stats: dict[str, float] = {}
            for m in range(0, len(idx), micro):
                j = idx[m: m + micro]
                lp, ent = token_logprobs(model, ids[j], attn[j], temp, batch.keep, with_entropy=True)
                pg_loss, pg_metrics = loss_fn(old_log_prob=old[j], log_prob=lp, advantages=adv_tok[j],
                                              response_mask=lmask[j], loss_agg_mode=a.loss_agg_mode,
                                              config=verl_cfg)
                # scale the micro-batch token-mean to the mini-batch token-mean
                weight = lmask[j].sum() / tokens_in_mb if a.loss_agg_mode == "token-mean" else len(j) / len(idx)
                (pg_loss * weight).backward()
                stats["actor/pg_loss"] = stats.get("actor/pg_loss", 0.0) + float(pg_loss.detach()) * float(weight)
                ent_mean = float((ent.detach() * lmask[j]).sum() / lmask[j].sum().clamp(min=1))
                stats["actor/entropy"] = stats.get("actor/entropy", 0.0) + ent_mean * float(weight)
                for k, v in pg_metrics.items():
                    stats[k] = stats.get(k, 0.0) + float(v) * float(weight)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
            if torch.isfinite(grad_norm):
                optimizer.step()
            else:  # a non-finite gradient must not poison the weights; skip this mini-batch
                stats["actor/skipped_nonfinite"] = 1.0
            stats["actor/grad_norm"] = float(grad_norm)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
    optimizer.zero_grad(set_to_none=True)
    return {k: v / max(count, 1) for k, v in sums.items()}


# ------------------------------------------------------------------------------------------- engine
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def render_corpus(tokenizer_free_tasks: Sequence[Any], env) -> list[str]:
    """Texts for the tiny tokenizer's corpus: tool schemas, user messages and oracle calls of the tasks."""
    from tool_envs.parsing import format_tool_calls

    texts = []
    tools = env.tools if env is not None else []
    texts.extend(json.dumps(t) for t in tools)
    for t in tokenizer_free_tasks:
        texts.extend(t.user_texts())
        for turn in t.gt_calls or []:
            if turn:
                texts.append(format_tool_calls(turn, "hermes"))
    return texts


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
        from dipo_tools.dipo import DiPOState

        self.dipo_config = cfg.algorithm.dipo_config()
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
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if not os.path.isdir(mc.path):
                raise ValueError(f"model.path={mc.path!r} is not a local directory; point it at a saved HF model "
                                 "(no hub downloads at run time)")
            tok = tokenizer or AutoTokenizer.from_pretrained(mc.path)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            return tok, AutoModelForCausalLM.from_pretrained(mc.path, dtype=dtype)
        from dipo_tools.models import build_tiny_model, build_tiny_tokenizer

        if tokenizer is None:
            corpus = render_corpus(self.train_tasks, self.default_env) if mc.tokenizer_corpus_tasks else None
            tokenizer = build_tiny_tokenizer(corpus=corpus, vocab_size=mc.vocab_size, seed=self.cfg.trainer.seed)
        return tokenizer, build_tiny_model(tokenizer, preset=mc.preset, seed=self.cfg.trainer.seed).to(dtype)

    def env_for(self, task):
        key = tuple(task.envs) if task.envs else ("__default__",)
        if key not in self._env_cache:
            if task.envs:
                from tool_envs import env_for_task

                self._env_cache[key] = env_for_task(task)
            else:
                self._env_cache[key] = self.default_env
        return self._env_cache[key]

    def runner_config(self):
        from tool_envs.runner import RunnerConfig

        r = self.cfg.rollout
        wanted = dict(tool_format=r.tool_format, max_assistant_turns=r.max_assistant_turns,
                      max_response_tokens=r.max_response_tokens, max_calls_per_turn=r.max_calls_per_turn,
                      system_prompt=r.system_prompt, max_new_tokens_per_step=r.max_new_tokens)
        wanted.update(r.runner)
        names = {f.name for f in dataclasses.fields(RunnerConfig)}
        unknown = sorted(set(r.runner) - names)
        if unknown:
            raise ValueError(f"rollout.runner: unknown RunnerConfig option(s) {unknown}; allowed: {sorted(names)}")
        return RunnerConfig(**{k: v for k, v in wanted.items() if k in names})

    def renderer(self, rc):
        """One chat renderer per engine: probing the template once instead of per episode."""
        if getattr(self, "_renderer", None) is None:
            from tool_envs.chat import ChatRenderer

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
        from tool_envs.runner import run_episode

        rc = self.runner_config()
        params = self.sampling_params(temperature)
        gen = generate or self.generator
        renderer = self.renderer(rc)
        params["stop_token_ids"] = sorted(renderer.stops)

        async def _all():
            coros = [run_episode(tokenizer=self.tokenizer, env=self.env_for(t), task=t, generate=gen,
                                 sampling_params=params, config=rc, renderer=renderer)
                     for t in tasks for _ in range(n)]
            return await asyncio.gather(*coros)

        return list(asyncio.run(_all()))

    def score(self, trajs, tasks_rep) -> list[Scored]:
        out = []
        for tr, task in zip(trajs, tasks_rep):
            try:
                out.append(self.scorer(tr, task, self.step))
            except Exception as e:  # a reward bug on one sample must not kill training: score it as failed
                out.append(Scored(0.0, False, {"reward_error": 1.0}))
                print(f"[dipo] reward failed on task {getattr(task, 'id', '?')}: {type(e).__name__}: {e}")
        return out

    # -- one RL step
    def train_step(self) -> dict[str, float]:
        from dipo_tools.dipo import classify_groups, compute_dipo_advantages, group_codes, response_log_ppl

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

        metrics.update(self._rollout_metrics(trajs, scored, prefix="train"))
        metrics.update({f"dipo/{k}": v for k, v in stats.items() if v is not None})
        metrics["train/kept_fraction"] = float(keep.float().mean())
        metrics["train/advantage_abs_mean"] = float(adv.abs().mean())
        metrics.update(timings)
        metrics["time/step"] = sum(timings.values())
        return metrics

    def _rollout_metrics(self, trajs, scored, prefix: str) -> dict[str, float]:
        m: dict[str, float] = {
            f"{prefix}/reward": float(np.mean([s.score for s in scored])),
            f"{prefix}/success": float(np.mean([s.success for s in scored])),
            f"{prefix}/response_tokens": float(np.mean([sum(t.response_mask) for t in trajs])),
            f"{prefix}/tool_calls": float(np.mean([t.num_tool_calls for t in trajs])),
            f"{prefix}/assistant_turns": float(np.mean([t.num_assistant_turns for t in trajs])),
        }
        steps = [s for t in trajs for turn in t.turns for s in turn]
        if steps:
            m[f"{prefix}/parse_error_rate"] = float(np.mean([s.parse_error is not None for s in steps]))
        comp_keys = sorted({k for s in scored for k in s.components})
        for k in comp_keys:
            vals = [s.components[k] for s in scored if k in s.components]
            m[f"{prefix}/reward_{k}"] = float(np.mean(vals))
        return m

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
                m.update(self._rollout_metrics(trajs, self.score(trajs, ts), prefix=name))
        if m:
            m["time/eval"] = time.perf_counter() - t0
        return m

    # -- supervised warm-up through the same runner
    def sft_warmup(self, steps: int | None = None, progress: bool | None = None) -> list[float]:
        """Teach the call format: oracle episodes recorded by the runner, cross-entropy on generated tokens."""
        sc = self.cfg.sft
        steps = sc.steps if steps is None else steps
        if steps <= 0:
            return []
        trajs = self.oracle_trajectories(self.train_tasks)
        opt = torch.optim.AdamW(self.model.parameters(), lr=sc.lr)
        rng = random.Random(self.cfg.trainer.seed + 101)
        losses = []
        bar = _progress(range(steps), "sft warm-up", self.cfg.trainer.progress if progress is None else progress)
        self.model.train()
        for _ in bar:
            batch = pack_trajectories(rng.sample(trajs, min(sc.batch_size, len(trajs))), self.tokenizer.pad_token_id)
            ids, attn, lm = (batch.input_ids.to(self.device), batch.attention_mask.to(self.device),
                             batch.loss_mask.to(self.device))
            lp, _ = token_logprobs(self.model, ids, attn, 1.0, batch.keep)
            loss = -(lp * lm).sum() / lm.sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        return losses

    def oracle_trajectories(self, tasks: Sequence[Any]) -> list[Any]:
        """Run each task through the runner with a scripted ``generate`` that emits the ground-truth calls."""
        from tool_envs.oracle import oracle_generate
        from tool_envs.runner import run_episode

        fmt, final, tok = self.cfg.rollout.tool_format, self.cfg.sft.final_text, self.tokenizer
        rc = self.runner_config()

        async def _all():
            return await asyncio.gather(*[
                run_episode(tokenizer=tok, env=self.env_for(t), task=t, generate=oracle_generate(tok, t, fmt, final),
                            sampling_params=self.sampling_params(1.0), config=rc, renderer=self.renderer(rc))
                for t in tasks])

        out = list(asyncio.run(_all()))
        return [t for t in out if sum(t.response_mask) > 0]

    # -- checkpoints
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dipo_state": self.dipo_state.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": self.step,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                    "perm": self._perm_gen.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "config": dataclasses.asdict(self.cfg),
        }

    def save_checkpoint(self, path: str | None = None) -> str:
        path = path or os.path.join(self.out_dir, "checkpoints", f"step_{self.step:06d}")
        os.makedirs(path, exist_ok=True)
        tmp = os.path.join(path, CKPT_NAME + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, os.path.join(path, CKPT_NAME))  # atomic: a crash never leaves half a checkpoint
        self.tokenizer.save_pretrained(path)
        self._prune_checkpoints()
        return path

    def _prune_checkpoints(self) -> None:
        root = os.path.join(self.out_dir, "checkpoints")
        if not os.path.isdir(root):
            return
        ckpts = sorted(d for d in os.listdir(root) if d.startswith("step_"))
        for d in ckpts[: -self.cfg.trainer.keep_checkpoints]:
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)

    def load_checkpoint(self, path: str) -> None:
        file = os.path.join(path, CKPT_NAME) if os.path.isdir(path) else path
        if not os.path.exists(file):
            raise FileNotFoundError(f"no checkpoint at {file}; expected a directory holding {CKPT_NAME}")
        s = torch.load(file, map_location="cpu", weights_only=False)
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.dipo_state.load_state_dict(s["dipo_state"])
        self.sampler.load_state_dict(s["sampler"])
        self.step = int(s["step"])
        rng = s["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        self._perm_gen.set_state(rng["perm"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

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
                self._drop_metrics_after(self.step)
                print(f"[dipo] resumed from {path} at step {self.step}")
        rows = []
        if self.step == 0 and tc.eval_every and self.eval_tasks:
            rows.append(self._log(self.evaluate()))
        bar = _progress(range(self.step, total), f"{self.cfg.algorithm.name} steps",
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

    def _drop_metrics_after(self, step: int) -> None:
        """A resumed run repeats the steps after its checkpoint: forget the rows an interrupted run logged."""
        path = os.path.join(self.out_dir, "metrics.jsonl")
        if os.path.exists(path):
            keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
            with open(path, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in keep)

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


def _progress(it, desc: str, enabled: bool, **kw):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, dynamic_ncols=True, **kw)


def latest_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint folder under ``<output_dir>/checkpoints``, or None."""
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return None
    ckpts = sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, CKPT_NAME)))
    return os.path.join(root, ckpts[-1]) if ckpts else None


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
