"""The in-process transformers policy with a tiny test-built model (saved to disk and loaded from the path)."""
from __future__ import annotations

import asyncio
import json
import math

import pytest

from dipo_tools.eval.bfcl import BFCLEvalConfig, evaluate_bfcl
from dipo_tools.eval.policies import SamplingConfig, TransformersPolicy
from dipo_tools.eval.prompts import PromptConfig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer):
    from dipo_tools.models.tiny import build_tiny_model

    d = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model(tiny_tokenizer, seed=0, max_position_embeddings=16384).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return str(d)


def test_transformers_policy_runs_single_and_multi_turn(model_dir, tmp_path):
    sampling = SamplingConfig(temperature=0.0, max_tokens=12)
    pol = TransformersPolicy(model_dir, prompt=PromptConfig(), sampling=sampling)
    # the smallest multi-turn entry (one backend, 2 turns): the tools alone are thousands of tokens
    cfg = BFCLEvalConfig(categories="simple,irrelevance,multi_turn_base", ids=["simple_python_0", "irrelevance_0",
                         "multi_turn_base_100"], output_dir=str(tmp_path / "a"), progress=False, concurrency=1,
                         max_step_tokens=4, max_assistant_steps=1)
    rep = evaluate_bfcl(pol, cfg)
    assert {k: v["total"] for k, v in rep["categories"].items()} == {"simple": 1, "irrelevance": 1, "multi_turn_base": 1}
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "a" / "results.jsonl").read_text().splitlines())}
    # a random model does not solve the task, but it did generate, and the episode ran every user turn
    assert rows["simple_python_0"]["result"] and not rows["simple_python_0"]["valid"]
    assert len(rows["multi_turn_base_100"]["result"]) >= 1
    assert rep["policy"]["kind"] == "transformers" and rep["policy"]["model"] == model_dir
    # greedy decoding is deterministic
    cfg.output_dir, cfg.categories, cfg.ids = str(tmp_path / "b"), "simple", ["simple_python_0"]
    evaluate_bfcl(pol, cfg)
    again = {r["id"]: r for r in map(json.loads, (tmp_path / "b" / "results.jsonl").read_text().splitlines())}
    assert again["simple_python_0"]["result"] == rows["simple_python_0"]["result"]


def test_generate_fn_returns_aligned_logprobs(model_dir):
    pol = TransformersPolicy(model_dir, prompt=PromptConfig(), sampling=SamplingConfig(temperature=1.0, max_tokens=6))
    gen = pol.make_generate(None)
    prompt = pol.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    ids, lps = asyncio.run(gen(list(prompt), {"max_tokens": 6}))
    assert 1 <= len(ids) <= 6 and len(lps) == len(ids)
    assert all(lp <= 0.0 and math.isfinite(lp) for lp in lps)
    # the same sampler as the training engine: log-probs of the full distribution at the temperature
    import torch

    from dipo_tools.engines.local import token_logprobs

    seq = torch.tensor([list(prompt) + ids])
    ref, _ = token_logprobs(pol.model, seq, torch.ones_like(seq), 1.0, keep=len(ids))
    assert torch.allclose(ref[0], torch.tensor(lps), atol=1e-5)
