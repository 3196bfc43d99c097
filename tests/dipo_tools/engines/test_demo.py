"""The demo pipeline in a reduced size: warm-up, DiPO and GRPO from the same start, report with real numbers;
and what it saves reloads, through standard loading, as the model it trained."""
from __future__ import annotations

import json
import os

import pytest

from dipo_tools.demo.run import QUICK_OVERRIDES, _default_config_path, run_demo


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick_demo") / "demo"
    return out, run_demo(output_dir=str(out), quick=True, progress=False)


def test_quick_demo_writes_report(quick_demo):
    out, report = quick_demo
    text = open(report).read()
    assert "| dipo |" in text and "| grpo |" in text
    assert "eval_success.png" in text and os.path.exists(out / "eval_success.png")
    summary = json.load(open(out / "summary.json"))
    for algo in ("dipo", "grpo"):
        rows = [json.loads(x) for x in open(out / algo / "metrics.jsonl")]
        assert [r["step"] for r in rows] == [0, 1, 2]  # eval at start, then 2 RL steps
        # the report's numbers are the metrics' numbers
        assert summary[algo]["r0"] == rows[0]["eval/reward"]
        assert summary[algo]["r1"] == rows[-1]["eval/reward"]
    # both runs start from the same warmed-up weights: identical held-out evaluation at step 0
    assert summary["dipo"]["r0"] == summary["grpo"]["r0"]


def test_saved_demo_model_reloads_as_trained(quick_demo, tmp_path, assert_reloads_identically):
    """final_model/ through AutoTokenizer + AutoModelForCausalLM (the model.path= route, as vLLM and verl
    load it) gives the training token ids and log-probs on every training episode; checkpoints too."""
    from transformers import AutoTokenizer

    from dipo_tools.engines.config import load_config
    from dipo_tools.engines.local import LocalEngine, load_tasks_for

    out, _ = quick_demo
    base = [*QUICK_OVERRIDES, "trainer.progress=false", "trainer.tensorboard=false"]
    cfg = load_config(_default_config_path(), [*base, f"trainer.output_dir={tmp_path / 'a'}"])
    train, _, env = load_tasks_for(cfg)
    # the tokenizer the demo trained with (built from the same tasks), with the weights it ended with
    trained = LocalEngine(cfg, train_tasks=train, env=env, log=False)
    ckpt = os.path.join(out, "dipo", "checkpoints", sorted(os.listdir(out / "dipo" / "checkpoints"))[-1])
    trained.load_checkpoint(ckpt)
    assert trained.step == 2
    final = str(out / "dipo" / "final_model")
    cfg_b = load_config(_default_config_path(), [*base, f"trainer.output_dir={tmp_path / 'b'}", f"model.path={final}"])
    reloaded = LocalEngine(cfg_b, train_tasks=train, env=env, log=False)

    trajs = assert_reloads_identically(trained, reloaded, train)
    texts = [trained.tokenizer.decode(t.prompt_ids + t.response_ids) for t in trajs]
    assert any(ch.isdigit() for ch in "".join(texts))  # quantities: where Qwen's pre-tokenizer splits digits
    ckpt_tok = AutoTokenizer.from_pretrained(ckpt)
    assert [ckpt_tok.encode(s, add_special_tokens=False) for s in texts] == [t.prompt_ids + t.response_ids for t in trajs]


def test_demo_rejects_unknown_algorithm(tmp_path):
    import pytest

    from dipo_tools.engines.config import ConfigError

    with pytest.raises(ConfigError, match="allowed values"):
        run_demo(output_dir=str(tmp_path), quick=True, algorithms=["ppo"], progress=False)


def test_packaged_demo_config_matches_repo_config():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[3]
    assert (root / "dipo_tools" / "demo" / "demo.yaml").read_text() == (root / "configs" / "local" / "demo.yaml").read_text()


def test_unseen_requests_are_distinct_and_never_in_training():
    from dipo_tools.demo.run import _unseen_requests
    from tool_envs.envs.inventory.generate import generate_tasks

    train = generate_tasks(200, seed=0, max_quantity=5)
    pools = [generate_tasks(100, seed=1, split="heldout", max_quantity=5), generate_tasks(300, seed=2, max_quantity=5)]
    unseen = _unseen_requests(train, pools, 1000)
    texts = [tuple(t.user_texts()) for t in unseen]
    assert len(texts) == len(set(texts)) > 0
    assert not set(texts) & {tuple(t.user_texts()) for t in train}
    assert {t.metadata["split"] for t in unseen} == {"train", "heldout"}  # both sources contribute
    assert len(_unseen_requests(train, pools, 5)) == 5
