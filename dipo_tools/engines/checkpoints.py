"""Resumable checkpoints of the local engine: ``<output_dir>/checkpoints/step_N/state.pt`` + the tokenizer.

A checkpoint holds the model, optimizer, DiPO queue, data position, step and every RNG state, so a resumed
run gives the same result as an uninterrupted one. Writes are atomic (a crash never leaves half a file)
and only the newest ``keep`` checkpoints stay.
"""
from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import torch

from dipo_tools.engines.metrics import read_metrics

CKPT_NAME = "state.pt"


def capture_rng(perm_gen: torch.Generator) -> dict:
    """Every RNG the engine draws from: torch, Python, numpy, the PPO permutation generator and CUDA."""
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
            "perm": perm_gen.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(rng: dict, perm_gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    perm_gen.set_state(rng["perm"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(path: str, state: dict, tokenizer) -> str:
    """Write ``state`` to ``path/state.pt`` atomically, with the tokenizer beside it."""
    os.makedirs(path, exist_ok=True)
    tmp = os.path.join(path, CKPT_NAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(path, CKPT_NAME))  # atomic: a crash never leaves half a checkpoint
    tokenizer.save_pretrained(path)
    return path


def prune_checkpoints(root: str, keep: int) -> None:
    """Delete all but the newest ``keep`` ``step_*`` folders under ``root``."""
    if not os.path.isdir(root):
        return
    ckpts = sorted(d for d in os.listdir(root) if d.startswith("step_"))
    for d in ckpts[:-keep]:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def load_checkpoint_state(path: str) -> dict:
    """The saved state of a checkpoint folder (or of a ``state.pt`` file)."""
    file = os.path.join(path, CKPT_NAME) if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"no checkpoint at {file}; expected a directory holding {CKPT_NAME}")
    return torch.load(file, map_location="cpu", weights_only=False)


def latest_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint folder under ``<output_dir>/checkpoints``, or None."""
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return None
    ckpts = sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, CKPT_NAME)))
    return os.path.join(root, ckpts[-1]) if ckpts else None


def drop_metrics_after(output_dir: str, step: int) -> None:
    """A resumed run repeats the steps after its checkpoint: forget the rows an interrupted run logged."""
    path = os.path.join(output_dir, "metrics.jsonl")
    if os.path.exists(path):
        keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in keep)
