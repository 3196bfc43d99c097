"""Tiny models with the architecture of a named model, built offline (for ``--cpu-smoke`` runs).

A CPU smoke run must exercise the code paths the real model takes in verl (its transformers class, tied or
separate embeddings, grouped-query attention, Qwen3's q/k norms, its vocabulary size) without its weights.
:data:`ARCHITECTURES` records those facts for the models our shipped configs name (from their public
``config.json``); :func:`tiny_config` keeps them and shrinks width and depth. A local model folder works
too: its own ``config.json`` is shrunk the same way.
"""
from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM


@dataclass(frozen=True)
class Architecture:
    """The structural facts of a model that a tiny stand-in must keep."""

    model_type: str
    vocab_size: int
    tie_word_embeddings: bool
    num_attention_heads: int
    num_key_value_heads: int
    rope_theta: float
    max_position_embeddings: int


ARCHITECTURES: dict[str, Architecture] = {
    "Qwen/Qwen2.5-3B-Instruct": Architecture("qwen2", 151936, True, 16, 2, 1_000_000.0, 32768),
    "Qwen/Qwen2.5-7B-Instruct": Architecture("qwen2", 152064, False, 28, 4, 1_000_000.0, 32768),
    "Qwen/Qwen2.5-7B": Architecture("qwen2", 152064, False, 28, 4, 1_000_000.0, 131072),
    "Qwen/Qwen3-4B-Base": Architecture("qwen3", 151936, True, 32, 8, 1_000_000.0, 32768),
    "Qwen/Qwen3-8B-Base": Architecture("qwen3", 151936, False, 32, 8, 1_000_000.0, 32768),
}

#: width of the tiny stand-in: heads keep the real query/key-value ratio; the width stays small because the
#: vocabulary-sized output layer dominates the cost on CPU
TINY_HEAD_DIM = 8
TINY_LAYERS = 2
TINY_KV_HEADS = 1


def architecture_of(name_or_path: str) -> Architecture:
    """The architecture a config's ``model.path`` names: a known hub id or a local folder with config.json."""
    if name_or_path in ARCHITECTURES:
        return ARCHITECTURES[name_or_path]
    config_file = pathlib.Path(os.path.expanduser(name_or_path)) / "config.json"
    if config_file.exists():
        raw = json.loads(config_file.read_text())
        heads = int(raw.get("num_attention_heads", 4))
        return Architecture(
            model_type=str(raw["model_type"]),
            vocab_size=int(raw["vocab_size"]),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            num_attention_heads=heads,
            num_key_value_heads=int(raw.get("num_key_value_heads", heads)),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
        )
    raise ValueError(
        f"model.path={name_or_path!r}: no offline architecture known for it; use a local model folder (its "
        f"config.json is shrunk) or one of {sorted(ARCHITECTURES)}"
    )


def tiny_config(arch: Architecture, vocab_size: int, *, max_position_embeddings: int = 8192,
                pad_token_id: int | None = None, eos_token_id: int | None = None) -> Any:
    """A transformers config of ``arch``'s class: 2 layers, one KV head of dim 8, the real GQA ratio."""
    ratio = max(1, arch.num_attention_heads // max(1, arch.num_key_value_heads))
    heads = TINY_KV_HEADS * ratio
    hidden = heads * TINY_HEAD_DIM
    return AutoConfig.for_model(
        arch.model_type,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=heads,
        num_key_value_heads=TINY_KV_HEADS,
        head_dim=TINY_HEAD_DIM,
        tie_word_embeddings=arch.tie_word_embeddings,
        rope_theta=arch.rope_theta,
        max_position_embeddings=min(arch.max_position_embeddings, max_position_embeddings),
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
        use_cache=True,
    )


def build_tiny_like(name_or_path: str, tokenizer: Any, out_dir: str | os.PathLike, seed: int = 0) -> pathlib.Path:
    """Build a random tiny model of ``name_or_path``'s architecture for ``tokenizer``; save both to ``out_dir``."""
    arch = architecture_of(name_or_path)
    # the real vocabulary (Qwen pads it past the tokenizer) when the tokenizer is the model's family's;
    # a small test tokenizer gets an embedding of its own size
    vocab = arch.vocab_size if arch.vocab_size // 2 < len(tokenizer) <= arch.vocab_size else len(tokenizer)
    config = tiny_config(arch, vocab, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = pathlib.Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
