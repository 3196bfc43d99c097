"""What the smoke run avoids starting: each extra process costs seconds of a 2-core machine's start-up."""
from __future__ import annotations

import multiprocess
from verl.utils.dataset.rl_dataset import RLHFDataset

from dipo_tools.verl_ext.main import compose_config
from dipo_tools.verl_ext.smoke import SmokeConfig, build_data, smoke_overrides


def _smoke_config(tmp_path, name: str):
    train, val = build_data(SmokeConfig(data="math"), tmp_path)
    base = compose_config(name)
    overrides = smoke_overrides(base, SmokeConfig(data="math"), model=tmp_path / "model", train=train, val=val,
                                run_dir=tmp_path / "run", total_steps=2, tokens=1024)
    return compose_config(name, overrides), train


def test_verls_prompt_filter_runs_in_the_trainers_process(tmp_path, qwen_tokenizer, monkeypatch):
    """datasets starts a worker pool even for num_proc=1 (and pickles the tokenizer into it: 14 s for 8 rows)."""
    config, train = _smoke_config(tmp_path, "math_dipo_qwen3-4b-base")
    assert config.data.filter_overlong_prompts  # the config's own filter still runs

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(multiprocess, "Pool", no_pool)
    monkeypatch.setattr(multiprocess, "get_context", no_pool)
    dataset = RLHFDataset(str(train), qwen_tokenizer, config.data)
    assert len(dataset) > 0


def test_the_smoke_starts_no_ray_dashboard(tmp_path):
    config, _ = _smoke_config(tmp_path, "env_dipo_qwen2.5-3b")
    assert config.ray_kwargs.ray_init.include_dashboard is False
