"""The offline tiny tokenizer/model: template rendering, exact round-trips, save/load, determinism."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dipo_tools.models import SPECIAL_TOKENS, build_tiny_model, build_tiny_tokenizer

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer(vocab_size=600)


def test_specials_are_single_tokens(tok):
    for s in SPECIAL_TOKENS:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, s
        assert tok.convert_ids_to_tokens(ids[0]) == s
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert set(tok("x").keys()) == {"input_ids", "attention_mask"}


def test_template_renders_tools_calls_and_responses(tok):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "tool", "content": "18C"},
        {"role": "assistant", "content": "Sunny."},
    ]
    s = tok.apply_chat_template(msgs, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert s.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in s
    assert ("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
            "\n</tool_call><|im_end|>\n") in s
    # consecutive tool messages share one user turn, as in Qwen2.5
    assert ("<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n18C\n"
            "</tool_response><|im_end|>\n") in s
    assert s.endswith("<|im_start|>assistant\nSunny.<|im_end|>\n<|im_start|>assistant\n")
    # without tools or system there is no system turn at all
    plain = tok.apply_chat_template(msgs[1:2], tokenize=False, add_generation_prompt=False)
    assert plain == "<|im_start|>user\nWeather in Paris?<|im_end|>\n"


@pytest.mark.parametrize("text", ["héllo wörld 🙂 {\"a\": [1, 2.5, null]}", "<tool_call>\n{}\n</tool_call><|im_end|>",
                                  "  spaced\ttabs\n\nnewlines  "])
def test_decode_round_trip(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_deterministic():
    a = build_tiny_tokenizer(vocab_size=600, corpus=["book a room for alice"])
    b = build_tiny_tokenizer(vocab_size=600, corpus=["book a room for alice"])
    assert a.get_vocab() == b.get_vocab()
    with pytest.raises(ValueError, match="vocab_size"):
        build_tiny_tokenizer(vocab_size=100)


def test_model_save_load_generate(tok, tmp_path):
    m = build_tiny_model(tok, preset="test", seed=3)
    m2 = build_tiny_model(tok, preset="test", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), m2.parameters()))
    assert m.config.vocab_size == len(tok) and m.config.tie_word_embeddings
    m.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    m3 = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert tok2.get_vocab() == tok.get_vocab() and tok2.chat_template == tok.chat_template
    # model_type qwen2 makes AutoTokenizer rebuild Qwen's pre-tokenizer (digits one by one): ours must be it
    text = "Add 4 apples, remove 123 pears; café 2026-01-31 \n\n {\"quantity\": 12}"
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    prompt = tok2.apply_chat_template([{"role": "user", "content": "hi"}], tools=TOOLS, add_generation_prompt=True,
                                      return_dict=True, return_tensors="pt")
    with torch.no_grad():
        a = m(**prompt).logits
        b = m3(**prompt).logits
    assert torch.allclose(a, b)
    out = m3.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5 or out[0, -1].item() == tok.eos_token_id
    with pytest.raises(ValueError, match="preset"):
        build_tiny_model(tok, preset="huge")
