"""Tiny offline tokenizer and Qwen2 model builders (no hub, no downloads).

``build_tiny_tokenizer`` trains a byte-level BPE at run time on a synthetic corpus (plus any text you pass),
adds the ChatML and tool special tokens Qwen uses, and attaches a Qwen-style tools-aware chat template:
``tools`` are rendered in a ``<tools>`` block of the system turn, assistant ``tool_calls`` as hermes
``<tool_call>{json}</tool_call>`` and ``tool`` messages as ``<tool_response>`` blocks inside a user turn. The
rendered text follows Qwen2.5's layout, so the same parser and masks work for the tiny model and real Qwen.

``build_tiny_model`` builds a randomly initialised ``Qwen2ForCausalLM`` from a named size preset. Together
they give CI and the CPU demo a real transformers model path without network access.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

SPECIAL_TOKENS: list[str] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen2.5-style ChatML template, tools-aware. Written with explicit "\n" joins because the HF sandbox uses
# trim_blocks/lstrip_blocks: a newline after a block tag is eaten, so every newline we want is in a string.
CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- '" + DEFAULT_SYSTEM_PROMPT + "' }}{%- endif %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}"
    "{%- elif messages and messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' and loop.first %}"
    "{%- elif message['role'] == 'user' or message['role'] == 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}"
    "{%- if message['content'] %}{{- '\\n' + message['content'] }}{%- endif %}"
    "{%- for tool_call in message.get('tool_calls') or [] %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    "{%- if (loop.first and message['content']) or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{%- if loop.first and not message['content'] %}{{- '\\n' }}{%- endif %}"
    "{{- '<tool_call>\\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' }}"
    "{%- if tool_call.arguments is string %}{{- tool_call.arguments }}"
    "{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message['content'] + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_WORDS = (
    "the a an of to in on for with at by from and or not is are was be can will please what when where which "
    "who how many much list show get set add remove create delete update find search book cancel check move "
    "send read write open close start stop schedule meeting event room item stock order price total date "
    "time day week month today tomorrow morning afternoon evening user assistant tool call result error "
    "name value id status true false null ok done yes no city weather currency amount number count name"
).split()
_NAMES = "alice bob carol dave erin frank grace heidi ivan judy paris london tokyo berlin madrid rome".split()


def _synthetic_corpus(seed: int = 0, n: int = 400) -> list[str]:
    """Short English + JSON + ChatML snippets so common tool-call text compresses into few tokens."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))
        name = f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}"
        args = {rng.choice(_WORDS): rng.choice([rng.choice(_NAMES), rng.randint(0, 999), rng.random() < 0.5])
                for _ in range(rng.randint(1, 3))}
        call = json.dumps({"name": name, "arguments": args})
        out.append(f"<|im_start|>user\n{words.capitalize()}?<|im_end|>\n")
        out.append(f"<|im_start|>assistant\n<tool_call>\n{call}\n</tool_call><|im_end|>\n")
        out.append(f"<|im_start|>user\n<tool_response>\n{json.dumps(args)}\n</tool_response><|im_end|>\n")
        schema = {"type": "function", "function": {"name": name, "description": words, "parameters": {
            "type": "object", "properties": {k: {"type": "string", "description": rng.choice(_WORDS)}
                                             for k in args}, "required": list(args)}}}
        out.append(json.dumps(schema))
        out.append(" ".join(str(rng.randint(0, 2030)) for _ in range(6)) + " 0123456789 .,:;!?-_()[]{}'\"/")
    out.append(CHAT_TEMPLATE)
    return out


def build_tiny_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024, seed: int = 0,
                         min_frequency: int = 2):
    """Train a byte-level BPE tokenizer with ChatML/tool specials and the tools-aware chat template.

    Args:
        corpus: extra training text (e.g. rendered prompts of your environment's tasks); it is added to the
            built-in synthetic corpus. More in-domain text -> shorter sequences -> faster CPU training.
        vocab_size: total vocabulary incl. the 256 byte symbols and specials. Larger compresses text better
            but grows the embedding/logit matrices; 512-2048 suits CPU demos.
        seed: seed of the synthetic corpus; the result is deterministic for the same inputs.
        min_frequency: BPE merge threshold.

    Returns a ``Qwen2Tokenizer`` (eos ``<|im_end|>``, pad ``<|endoftext|>``) that round-trips arbitrary text
    exactly (byte-level: no UNK) and splits text as Qwen's tokenizer does, so a saved model reloads through
    ``AutoTokenizer`` with the same ids.
    """
    # transformers and tokenizers are imported in the two builders only: CHAT_TEMPLATE and SPECIAL_TOKENS are
    # read by callers that need no model (the oracle's tokenizer), and transformers takes 5 s to import
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    if vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"build_tiny_tokenizer: vocab_size={vocab_size} is too small; use >= "
                         f"{256 + len(SPECIAL_TOKENS) + 1} (256 byte symbols + {len(SPECIAL_TOKENS)} specials)")
    texts = _synthetic_corpus(seed) + [t for t in (corpus or []) if t]
    # Train with exactly the normalizer and pre-tokenizer that Qwen2Tokenizer rebuilds on load: a saved
    # model has model_type qwen2, and AutoTokenizer then always returns a Qwen2Tokenizer (whatever
    # tokenizer_config.json declares), so any other pipeline would reload as different token ids.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in json.loads(tok.to_str())["model"]["merges"]]
    return Qwen2Tokenizer(
        vocab=tok.get_vocab(with_added_tokens=True),
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")],
        chat_template=CHAT_TEMPLATE,
        model_input_names=["input_ids", "attention_mask"],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


@dataclass(frozen=True)
class TinyPreset:
    """Size of a from-scratch Qwen2. CPU cost grows with hidden*layers; the vocab sets the logit cost."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int


PRESETS: dict[str, TinyPreset] = {
    # unit tests: ~0.1M params, a few ms per forward
    "test": TinyPreset(32, 64, 2, 4, 2),
    # CPU demo: ~0.5M params + embeddings; ~0.5 s per 8x8 RL step
    "tiny": TinyPreset(128, 256, 4, 4, 2),
    # slower, more capacity
    "small": TinyPreset(256, 768, 6, 8, 4),
}


def build_tiny_model(tokenizer, preset: str = "tiny", seed: int = 0, max_position_embeddings: int = 4096,
                     **overrides):
    """A randomly initialised ``Qwen2ForCausalLM`` sized by ``preset`` (one of ``PRESETS``), tied embeddings.

    ``overrides`` go straight into ``Qwen2Config`` (e.g. ``num_hidden_layers=2``). Deterministic for a seed.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"build_tiny_model: unknown preset {preset!r}; allowed: {sorted(PRESETS)}")
    p = PRESETS[preset]
    cfg = dict(
        vocab_size=len(tokenizer), hidden_size=p.hidden_size, intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_hidden_layers, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_key_value_heads, max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, use_cache=True,
    )
    cfg.update(overrides)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2ForCausalLM(Qwen2Config(**cfg))
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny_pair(preset: str = "tiny", corpus: Iterable[str] | None = None, vocab_size: int = 1024,
                    seed: int = 0):
    """Convenience: ``(tokenizer, model)``."""
    tok = build_tiny_tokenizer(corpus=corpus, vocab_size=vocab_size, seed=seed)
    return tok, build_tiny_model(tok, preset=preset, seed=seed)
