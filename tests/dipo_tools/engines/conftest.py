"""Shared fixtures: a test-built tokenizer and inventory tasks (no downloads, deterministic)."""
from __future__ import annotations

import pytest

SYSTEM = "Tools: add_stock(item, quantity), remove_stock(item, quantity), check_stock(item), list_items()."


@pytest.fixture(scope="session")
def inventory_tasks():
    from tool_envs.envs.inventory.generate import generate_tasks

    return generate_tasks(12, seed=0, split="train"), generate_tasks(4, seed=1, split="heldout")


@pytest.fixture(scope="session")
def tiny_tok(inventory_tasks):
    from dipo_tools.models import build_tiny_tokenizer

    train, _ = inventory_tasks
    return build_tiny_tokenizer(corpus=[SYSTEM] + [t for task in train for t in task.user_texts()], vocab_size=400)


@pytest.fixture
def make_cfg(tmp_path):
    from dipo_tools.engines.config import load_config

    def make(*overrides, out=None):
        base = [
            "data.env=inventory", "model.preset=test", f"trainer.output_dir={out or tmp_path / 'run'}",
            "trainer.progress=false", "trainer.eval_every=0", "trainer.tensorboard=true",
            "rollout.tasks_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=24",
            "rollout.max_response_tokens=96", "rollout.runner.pass_tools_to_template=false",
            f"rollout.system_prompt='{SYSTEM}'", "algorithm.dipo.min_side=2", "actor.lr=1e-3",
        ]
        return load_config(None, base + list(overrides))

    return make


@pytest.fixture
def make_engine(tiny_tok, inventory_tasks, make_cfg):
    from dipo_tools.engines.local import LocalEngine
    from dipo_tools.models import build_tiny_model

    def make(*overrides, out=None, log=True):
        cfg = make_cfg(*overrides, out=out)
        model = build_tiny_model(tiny_tok, preset="test", seed=cfg.trainer.seed)
        train, ev = inventory_tasks
        return LocalEngine(cfg, tokenizer=tiny_tok, model=model, train_tasks=train, eval_tasks=ev, log=log)

    return make


@pytest.fixture
def assert_reloads_identically():
    """``check(trained, reloaded, tasks)`` for two engines: the same token ids and log-probs on the oracle episode
    of every task (prompt, calls, tool results); returns the trained engine's trajectories."""
    import torch

    from dipo_tools.engines.local import pack_trajectories, token_logprobs

    def check(trained, reloaded, tasks):
        a, b = trained.oracle_trajectories(tasks), reloaded.oracle_trajectories(tasks)
        assert len(a) == len(b) == len(tasks)
        for x, y in zip(a, b):
            assert (x.prompt_ids, x.response_ids) == (y.prompt_ids, y.response_ids)
        batch = pack_trajectories(a, trained.tokenizer.pad_token_id)
        with torch.no_grad():
            lp_a, _ = token_logprobs(trained.model.eval(), batch.input_ids, batch.attention_mask, 1.0, batch.keep)
            lp_b, _ = token_logprobs(reloaded.model.eval(), batch.input_ids, batch.attention_mask, 1.0, batch.keep)
        m = batch.loss_mask
        assert m.sum() > 0 and torch.allclose(lp_a * m, lp_b * m, atol=1e-5)
        return a

    return check
