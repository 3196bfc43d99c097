"""The hf rollout server's sampling: verl's max_tokens rule, and log-probs that are the actor's quantity."""
from __future__ import annotations

import pytest
import torch

from dipo_tools.verl_ext.cpu.sampling import SamplingRequest, generate_batch, max_new_tokens


@pytest.fixture(scope="module")
def tiny():
    from dipo_tools.models.tiny import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer(vocab_size=512)
    return tok, build_tiny_model(tok, preset="test", seed=3).eval()


@pytest.mark.parametrize("params, want", [
    ({"max_tokens": 10}, 10),
    ({"max_new_tokens": 7}, 7),          # SGLang's name
    ({}, 32),                            # min(response_length, prompt_length + response_length - prompt)
    ({"max_tokens": 10_000}, 90),        # clamped to the room left in max_model_len
    ({"max_tokens": 0}, 1),              # at least one token, as vLLM
])
def test_max_new_tokens_follows_the_vllm_server(params, want):
    assert max_new_tokens(10, params, prompt_length=64, response_length=32, max_model_len=100) == want
    assert max_new_tokens(90, {}, prompt_length=64, response_length=32, max_model_len=100) == 6


def test_prompt_without_room_is_refused():
    with pytest.raises(ValueError, match="no room"):
        max_new_tokens(100, {}, prompt_length=64, response_length=32, max_model_len=100)


def test_log_probs_are_the_temperature_scaled_full_softmax_of_a_teacher_forced_pass(tiny):
    """What verl's actor computes as old_log_probs (logits / rollout temperature, whole vocabulary) — also
    under top-k/top-p, which only restrict what is sampled."""
    tok, model = tiny
    prompts = [tok.encode("add three apples please"), tok.encode("hello")]  # different lengths: left padding
    reqs = [SamplingRequest(p, max_tokens=12, temperature=0.7, top_k=20, top_p=0.9, ignore_eos=True) for p in prompts]
    outs = generate_batch(model, reqs, pad_token_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    for prompt, (ids, lps) in zip(prompts, outs):
        assert len(ids) == len(lps) == 12
        full = torch.tensor([prompt + ids])
        with torch.no_grad():
            logits = model(full).logits[0, len(prompt) - 1:-1] / 0.7
        want = logits.log_softmax(-1).gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(lps), want, rtol=0, atol=2e-5)


def test_greedy_batched_equals_one_by_one_and_stops_on_eos(tiny):
    tok, model = tiny
    prompts = [tok.encode(t) for t in ("book a room", "what is the stock of pears today", "x")]
    eos = [tok.eos_token_id]
    one = [generate_batch(model, [SamplingRequest(p, 16, temperature=0.0, stop_token_ids=eos)], pad_token_id=0)[0]
           for p in prompts]
    batched = generate_batch(model, [SamplingRequest(p, 16, temperature=0.0, stop_token_ids=eos) for p in prompts],
                             pad_token_id=0)
    assert [ids for ids, _ in batched] == [ids for ids, _ in one]
    # a stop token ends a request and is returned as its last token
    full = generate_batch(model, [SamplingRequest(prompts[1], 16, temperature=0.0, ignore_eos=True)], pad_token_id=0)[0][0]
    stop = full[-1]
    forced = SamplingRequest(prompts[1], 16, temperature=0.0, stop_token_ids=[stop])
    ids, _ = generate_batch(model, [forced], pad_token_id=0)[0]
    assert ids == full[: full.index(stop) + 1]


def test_top_k_one_is_greedy_and_seeded_sampling_repeats(tiny):
    tok, model = tiny
    p = tok.encode("remove two lemons")
    greedy = generate_batch(model, [SamplingRequest(p, 10, temperature=0.0, ignore_eos=True)], pad_token_id=0)[0][0]
    top1 = generate_batch(model, [SamplingRequest(p, 10, temperature=1.3, top_k=1, ignore_eos=True)], pad_token_id=0,
                          generator=torch.Generator().manual_seed(5))[0][0]
    assert top1 == greedy
    runs = [generate_batch(model, [SamplingRequest(p, 10, ignore_eos=True)], pad_token_id=0,
                           generator=torch.Generator().manual_seed(9))[0][0] for _ in range(2)]
    assert runs[0] == runs[1]
