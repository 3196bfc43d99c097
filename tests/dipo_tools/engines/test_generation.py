"""Batched generation: the sampled token's log-prob per step (the training quantity), bounded memory."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from dipo_tools.engines.generation import BatchedGenerator
from dipo_tools.engines.local import token_logprobs

QWEN_VOCAB = 151_936  # Qwen2.5 / Qwen3 embedding rows

# Run in a child process: torch's CPU allocations are invisible to tracemalloc, so the child reads the
# kernel's peak resident memory (VmHWM, reset through /proc/self/clear_refs). glibc's adaptive mmap threshold
# would keep freed multi-MB blocks resident and blur live memory with heap retention, so the child fixes it
# (MALLOC_MMAP_THRESHOLD_): every large tensor is then mapped on allocation and unmapped when freed.
MEASURE = r"""
import gc, json, pathlib, re, sys
import torch
from dipo_tools.engines.generation import BatchedGenerator
from dipo_tools.models import build_tiny_model, build_tiny_tokenizer

batch, steps, vocab = (int(x) for x in sys.argv[1:4])
torch.set_num_threads(1)
tok = build_tiny_tokenizer(vocab_size=600)
model = build_tiny_model(tok, preset="test", vocab_size=vocab, num_hidden_layers=1)
gen = BatchedGenerator(model, tok)
prompts = [tok.encode(f"Add {i} apples to the shop, please.") for i in range(batch)]
params = {"temperature": 1.0, "stop_token_ids": []}
gen.generate_batch(prompts[:2], params, [4, 4])  # kernels and allocator warmed up outside the measurement
kb = lambda f: int(re.search(f + r":\s+(\d+)", pathlib.Path("/proc/self/status").read_text()).group(1))
gc.collect()
pathlib.Path("/proc/self/clear_refs").write_text("5")
base = kb("VmRSS")
torch.manual_seed(0)
outs = gen.generate_batch(prompts, params, [steps] * batch)
print(json.dumps({"grown": (kb("VmHWM") - base) * 1024, "lengths": [len(ids) for ids, _ in outs]}))
"""


def test_generation_memory_is_one_step_of_logits_not_all():
    if not pathlib.Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    root = pathlib.Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    batch, steps = 8, 48
    out = subprocess.run([sys.executable, "-c", MEASURE, str(batch), str(steps), str(QWEN_VOCAB)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # a random model never samples a stop token out of 151,936 in 48 steps: every row ran to the end
    assert res["lengths"] == [steps] * batch
    one_step = batch * QWEN_VOCAB * 4  # fp32 logits of one step: 4.9 MB
    all_steps = steps * one_step  # what keeping every step's logits costs: 233 MB
    grown = res["grown"]
    assert grown < 6 * one_step, f"peak grew {grown / 2**20:.0f} MiB; one step of logits is {one_step / 2**20:.1f} MiB"
    assert grown < all_steps / 8


def test_logprobs_are_the_training_quantity_under_top_k_top_p(tiny_tok):
    """Top-k/top-p choose the token; the log-prob stays log_softmax(raw / T) as in the update's forward."""
    from dipo_tools.models import build_tiny_model

    model = build_tiny_model(tiny_tok, preset="test", seed=2)
    gen = BatchedGenerator(model, tiny_tok)
    prompt = tiny_tok("<|im_start|>user\nAdd 3 apples<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    torch.manual_seed(0)
    (ids, lps), = gen.generate_batch([prompt], {"temperature": 0.7, "top_k": 5, "top_p": 0.9}, [12])
    seq = torch.tensor([prompt + ids])
    ref, _ = token_logprobs(model, seq, torch.ones_like(seq), 0.7, keep=len(ids))
    assert torch.allclose(ref[0], torch.tensor(lps), atol=1e-5)
    # every sampled token is among the 5 most likely at its step, so truncation really was applied
    with torch.no_grad():
        logits = model(seq).logits[0, len(prompt) - 1:-1]
    top5 = logits.topk(5, dim=-1).indices
    assert all(t in top5[i].tolist() for i, t in enumerate(ids))
    # ... and truncation matters here: the kept tokens hold visibly less than all the mass
    kept_mass = torch.log_softmax(logits / 0.7, -1).gather(-1, top5).logsumexp(-1)
    assert float(kept_mass.max()) < -0.01

def test_greedy_rows_stop_at_their_own_limits(tiny_tok):
    from dipo_tools.models import build_tiny_model

    model = build_tiny_model(tiny_tok, preset="test", seed=3)
    gen = BatchedGenerator(model, tiny_tok)
    prompts = [tiny_tok("<|im_start|>user\nhi<|im_end|>\n")["input_ids"], tiny_tok("Check stock")["input_ids"]]
    a = gen.generate_batch(prompts, {"temperature": 0, "stop_token_ids": []}, [3, 7])
    b = gen.generate_batch(prompts, {"temperature": 0, "stop_token_ids": []}, [7, 7])
    assert [len(x[0]) for x in a] == [3, 7]
    assert a[0][0] == b[0][0][:3] and a[1] == b[1]  # the same greedy continuation whatever the batch's budget
    for p, (ids, lps) in zip(prompts, b):
        seq = torch.tensor([p + ids])
        ref, _ = token_logprobs(model, seq, torch.ones_like(seq), 1.0, keep=len(ids))
        assert torch.allclose(ref[0], torch.tensor(lps), atol=1e-5)


def test_min_tokens_holds_back_stop_tokens_only_for_choosing(tiny_tok):
    from dipo_tools.models import build_tiny_model

    model = build_tiny_model(tiny_tok, preset="test", seed=4)
    gen = BatchedGenerator(model, tiny_tok)
    prompt = tiny_tok("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    (free, _), = gen.generate_batch([prompt], {"temperature": 0}, [8])
    stop = free[0]  # make the greedy first token a stop token: without min_tokens it ends the row at once
    (short, _), = gen.generate_batch([prompt], {"temperature": 0, "stop_token_ids": [stop]}, [8])
    assert short == [stop]
    (ids, lps), = gen.generate_batch([prompt], {"temperature": 0, "stop_token_ids": [stop], "min_tokens": 5}, [8])
    assert stop not in ids[:5] and len(ids) >= 5
    seq = torch.tensor([prompt + ids])
    ref, _ = token_logprobs(model, seq, torch.ones_like(seq), 1.0, keep=len(ids))
    assert torch.allclose(ref[0], torch.tensor(lps), atol=1e-5)  # still the policy's own log-probs


def _two_turn_episodes(gen, tok, delays):
    """Episodes that generate, wait ``delays[i]`` seconds (a tool call of that length), then generate again."""
    import asyncio

    params = {"temperature": 1.0, "stop_token_ids": []}

    async def episode(i):
        prompt = tok(f"<|im_start|>user\nAdd {i} apples<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
        first, _ = await gen(prompt, {**params, "max_tokens": 6})
        await asyncio.sleep(delays[i])
        second, lps = await gen(prompt + first, {**params, "max_tokens": 6})
        return first, second, lps

    return [episode(i) for i in range(len(delays))]


def test_lockstep_batches_make_samples_independent_of_tool_call_timing(tiny_tok):
    """Same seed, tool calls of other lengths: the same samples, because a batch waits for every episode and
    its rows are in episode order. Batching whatever is ready instead gives other samples for other timings."""
    import asyncio

    from dipo_tools.models import build_tiny_model

    model = build_tiny_model(tiny_tok, preset="test", seed=4)

    def run(delays, lockstep):
        gen = BatchedGenerator(model, tiny_tok)
        torch.manual_seed(0)
        out = asyncio.run(gen.run_episodes(_two_turn_episodes(gen, tiny_tok, delays), lockstep=lockstep))
        return out, gen.num_calls

    slow_last, slow_first = [0.0, 0.0, 0.02, 0.04, 0.06, 0.08], [0.08, 0.06, 0.04, 0.02, 0.0, 0.0]
    a, calls_a = run(slow_last, lockstep=True)
    b, calls_b = run(slow_first, lockstep=True)
    assert a == b and calls_a == calls_b == 2  # one batch per round, however the tool calls interleave
    c, calls_c = run(slow_last, lockstep=False)
    d, _ = run(slow_first, lockstep=False)
    assert calls_c > 2 and c != d  # the hazard the default removes


def test_an_episode_that_fails_does_not_leave_the_others_waiting(tiny_tok):
    import asyncio

    from dipo_tools.models import build_tiny_model

    model = build_tiny_model(tiny_tok, preset="test", seed=4)
    gen = BatchedGenerator(model, tiny_tok)

    async def broken():
        raise ValueError("tool backend crashed")

    async def main():
        eps = _two_turn_episodes(gen, tiny_tok, [0.0, 0.01])
        with pytest.raises(ValueError, match="crashed"):
            await gen.run_episodes([*eps, broken()])
        # the generator is usable again, and an episode that ends early does not stall the others
        async def short():
            return "done"
        return await gen.run_episodes([short(), *_two_turn_episodes(gen, tiny_tok, [0.0, 0.02])])

    out = asyncio.run(asyncio.wait_for(main(), timeout=60))
    assert out[0] == "done" and len(out) == 3
