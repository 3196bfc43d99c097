"""The smoke run's micro-batch budget: small (memory is most of a CPU step's time), never below a sequence."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from tool_envs import Task, env_for_task
from tool_envs.runner import rendered_prompt_length

from dipo_tools.verl_ext.smoke import SmokeConfig, build_data, longest_prompt_tokens, micro_batch_tokens


def test_budget_is_the_configured_one_unless_a_sequence_is_longer():
    smoke = SmokeConfig(response_length=128, max_token_len_per_gpu=1024)
    assert micro_batch_tokens(smoke, 300) == 1024
    assert micro_batch_tokens(smoke, 985) == 985 + 128  # verl refuses a sequence longer than its budget


def test_environment_prompts_are_measured_with_their_tool_schemas(tmp_path, qwen_tokenizer):
    train, val = build_data(SmokeConfig(data="env_tasks", env="bfcl:message", response_length=128), tmp_path)
    rows = [r for f in (train, val) for r in pd.read_parquet(f).to_dict("records")]
    tasks = [Task.from_dict(json.loads(r["extra_info"]["task"])) for r in rows]
    with_tools = max(rendered_prompt_length(qwen_tokenizer, env_for_task(t), t) for t in tasks)
    chat_only = max(len(qwen_tokenizer.apply_chat_template(list(r["prompt"]), add_generation_prompt=True,
                                                           tokenize=True, return_dict=False)) for r in rows)
    longest = longest_prompt_tokens([train, val], qwen_tokenizer)
    assert longest == with_tools > chat_only + 200  # the message API's schemas are most of the prompt


@pytest.mark.parametrize("kind", ["toolrl", "math"])
def test_single_turn_prompts_are_measured_as_rendered(kind, tmp_path, qwen_tokenizer):
    train, val = build_data(SmokeConfig(data=kind), tmp_path)
    rows = [r for f in (train, val) for r in pd.read_parquet(f).to_dict("records")]
    lengths = [len(qwen_tokenizer.apply_chat_template(list(r["prompt"]), add_generation_prompt=True,
                                                      tokenize=True, return_dict=False)) for r in rows]
    assert longest_prompt_tokens([train, val], qwen_tokenizer) == max(lengths) > 20
