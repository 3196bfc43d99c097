"""Where the local engine's tasks come from: files or an environment's generator, and the epoch order.

``load_tasks_for`` builds the training and held-out splits of a config; ``TaskSampler`` hands out training
tasks in a seeded, resumable epoch-wise shuffle; ``render_corpus`` gives the tiny tokenizer the texts the
run will show it.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from typing import Any

from tool_envs import configure_executor, load_env, set_env_path
from tool_envs import tasks as task_mod
from tool_envs.parsing import format_tool_calls
from tool_envs.registry import task_generator

from dipo_tools.engines.config import LocalConfig


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
    d = cfg.data
    task_dirs = [os.path.dirname(os.path.abspath(f)) for f in (d.train_file, d.eval_file) if f]
    set_env_path(list(dict.fromkeys([*d.env_path, *task_dirs])))
    if cfg.rollout.tool_executor:
        configure_executor(dict(cfg.rollout.tool_executor))


def load_tasks_for(cfg: LocalConfig):
    """(train_tasks, eval_tasks, env_or_None) from files or the env's task generator."""
    configure_tools(cfg)
    d = cfg.data
    env = None
    if d.env is not None:
        env = load_env(d.env)

    def generate(n: int, split: str, seed: int):
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


def render_corpus(tokenizer_free_tasks: Sequence[Any], env) -> list[str]:
    """Texts for the tiny tokenizer's corpus: tool schemas, user messages and oracle calls of the tasks."""
    texts = []
    tools = env.tools if env is not None else []
    texts.extend(json.dumps(t) for t in tools)
    for t in tokenizer_free_tasks:
        texts.extend(t.user_texts())
        for turn in t.gt_calls or []:
            if turn:
                texts.append(format_tool_calls(turn, "hermes"))
    return texts
