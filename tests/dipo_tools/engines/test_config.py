"""The local config: typed nested sections, the explicit engine choice, and docs/config.md listing every key."""
from __future__ import annotations

import dataclasses
import os

import pytest

from dipo_tools.dipo import DiPOConfig
from dipo_tools.engines import config as C
from dipo_tools.engines.config import ConfigError, engine_of, load_config
from reward.toolrl import ToolRLConfig
from tool_envs.runner import RunnerConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO = os.path.join(ROOT, "configs", "local", "demo.yaml")


def test_nested_sections_are_the_typed_classes():
    cfg = load_config(DEMO, ["algorithm.dipo.gate=none", "rollout.runner.max_prompt_tokens=300",
                             "reward.name=toolrl", "reward.kwargs.correctness_range=[-1,2]"])
    assert isinstance(cfg.algorithm.dipo, DiPOConfig) and cfg.algorithm.dipo.gate == "none"
    assert cfg.algorithm.dipo.alpha == 0.1 and cfg.algorithm.dipo.enabled  # the file's alpha; enabled by name
    assert isinstance(cfg.rollout.runner, RunnerConfig) and cfg.rollout.runner.max_prompt_tokens == 300
    # the rollout keys fill the runner's, the file's runner keys stay
    r = cfg.rollout
    assert (r.runner.tool_format, r.runner.max_assistant_turns, r.runner.max_response_tokens,
            r.runner.max_new_tokens_per_step, r.runner.system_prompt, r.runner.pass_tools_to_template) == \
        (r.tool_format, r.max_assistant_turns, r.max_response_tokens, r.max_new_tokens, r.system_prompt, False)
    assert isinstance(cfg.reward.kwargs, ToolRLConfig) and cfg.reward.kwargs.correctness_range == (-1.0, 2.0)
    assert not load_config(DEMO, ["algorithm.name=grpo"]).algorithm.dipo.enabled
    assert load_config(DEMO, ["rollout.runner.tool_format=python"]).rollout.runner.tool_format == "python"


def test_the_resolved_dict_reloads_as_the_same_config(tmp_path):
    import yaml

    cfg = load_config(DEMO, ["algorithm.name=grpo", "reward.name=toolrl", "rollout.runner.max_prompt_tokens=300"])
    path = tmp_path / "resolved.yaml"
    path.write_text(yaml.safe_dump(C.config_to_dict(cfg)))  # what a sweep records and runs
    assert load_config(path) == cfg
    # a rollout key overridden on top of it still reaches the runner
    assert load_config(path, ["rollout.tool_format=python"]).rollout.runner.tool_format == "python"


@pytest.mark.parametrize("override, message", [
    ("algorithm.dipo.beta=1", r"algorithm.dipo: unknown DiPOConfig field\(s\) \['beta'\]"),
    ("algorithm.dipo.enabled=false", r"algorithm.dipo.enabled is set by algorithm.name"),
    ("rollout.runner.foo=1", r"rollout.runner: unknown RunnerConfig field\(s\) \['foo'\]"),
    ("rollout.runner.max_response_tokens=0", r"rollout.runner: RunnerConfig.max_response_tokens must be >= 1"),
    ("reward.kwargs.bar=1", r"reward.kwargs: unknown MultiTurnConfig field\(s\) \['bar'\]"),
    ("verl.x=1", r"unknown key 'verl'; allowed keys in the top level"),
    ("engine=verl", r"engine='verl': this file is not a local-engine config"),
])
def test_bad_nested_keys_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(DEMO, [override])
    assert "\n" not in str(e.value) and str(e.value).startswith(DEMO)


def test_the_engine_is_named_never_guessed(tmp_path):
    assert engine_of(DEMO) == "local"
    assert engine_of(DEMO, ["engine=verl"]) == "verl"
    assert engine_of("any-verl-config-name", flag="verl") == "verl"  # not read: verl takes config names
    assert engine_of(os.path.join(ROOT, "configs", "verl", "tool_dipo_qwen2.5-3b.yaml")) == "verl"
    bare = tmp_path / "bare.yaml"
    bare.write_text("actor_rollout_ref:\n  rollout:\n    n: 8\ndefaults: [ppo_trainer]\n")  # looks like verl
    with pytest.raises(ConfigError, match=r"no `engine` key; add `engine: local`.*or pass --engine"):
        engine_of(bare)
    typo = tmp_path / "typo.yaml"
    typo.write_text("engine: lokal\n")
    with pytest.raises(ConfigError, match=r"engine='lokal' is not allowed; allowed values: \['local', 'verl'\]"):
        engine_of(typo)


def test_every_shipped_local_config_names_its_engine_and_loads():
    folder = os.path.join(ROOT, "configs", "local")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        assert engine_of(path) == "local", name
        load_config(path)


def test_docs_config_lists_every_key():
    text = open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8").read()
    sections = [(f.name, type(f.default_factory())) for f in dataclasses.fields(C.LocalConfig) if f.name != "engine"]
    sections += [("rollout.runner", RunnerConfig), ("algorithm.dipo", DiPOConfig)]
    for section, cls in sections:
        assert f"### `{section}`" in text, section
        block = text.split(f"### `{section}`", 1)[1].split("\n### ", 1)[0]
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in block, f"{section}.{f.name} missing from docs/config.md"
