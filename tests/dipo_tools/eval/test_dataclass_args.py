"""Eval command lines derived from the config dataclasses: every default is the dataclass's own."""
from __future__ import annotations

import argparse
import dataclasses

from dipo_tools.eval.bfcl import BFCLEvalConfig, add_bfcl_args
from dipo_tools.eval.dataclass_args import dataclass_from_args, field_docs
from dipo_tools.eval.math import MathEvalConfig, add_math_args
from dipo_tools.eval.policies import SamplingConfig
from dipo_tools.eval.prompts import PromptConfig


def _parse(add, argv):
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def test_bfcl_cli_defaults_are_the_dataclass_defaults():
    args = _parse(add_bfcl_args, ["--output-dir", "out"])
    prompt = dataclass_from_args(PromptConfig, args)
    cfg = dataclass_from_args(BFCLEvalConfig, args, prompt=prompt)
    assert cfg == BFCLEvalConfig(output_dir="out")
    assert dataclass_from_args(SamplingConfig, args) == SamplingConfig()


def test_bfcl_cli_options_reach_the_config():
    args = _parse(add_bfcl_args, ["--output-dir", "o", "--categories", "simple,multi_turn", "--ids", "a,b",
                                  "--no-resume", "--no-progress", "--limit", "3", "--max-step-tokens", "64",
                                  "--prompt-mode", "toolrl", "--sanitize-names", "--max-new-tokens", "77",
                                  "--temperature", "0.5"])
    cfg = dataclass_from_args(BFCLEvalConfig, args, prompt=dataclass_from_args(PromptConfig, args))
    assert (cfg.categories, cfg.ids, cfg.resume, cfg.progress, cfg.limit, cfg.max_step_tokens) == \
        ("simple,multi_turn", ["a", "b"], False, False, 3, 64)
    assert cfg.prompt == PromptConfig(mode="toolrl", sanitize_names=True)
    assert dataclass_from_args(SamplingConfig, args) == SamplingConfig(temperature=0.5, max_tokens=77)


def test_math_cli_repeats_data_and_keeps_the_defaults():
    args = _parse(add_math_args, ["--output-dir", "o", "--data", "a.jsonl", "--data", "b.parquet", "--k", "4"])
    cfg = dataclass_from_args(MathEvalConfig, args)
    assert cfg == MathEvalConfig(data=["a.jsonl", "b.parquet"], output_dir="o", k=4)


def test_help_comes_from_the_docstring_and_covers_every_option():
    docs = field_docs(BFCLEvalConfig)
    assert {f.name for f in dataclasses.fields(BFCLEvalConfig)} <= set(docs)
    assert docs["max_step_tokens"].startswith("cap on one assistant step") and "max_response_tokens" in docs["max_step_tokens"]
    # "a / b: text" documents several fields
    assert field_docs(MathEvalConfig)["answer_key"] == field_docs(MathEvalConfig)["problem_key"]
