"""Every shipped verl config composes against verl 0.9.1's ppo_trainer and passes validation on CPU."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest


from dipo_tools.verl_ext.main import REPO_CONFIG_DIR, resolve_config  # noqa: E402
from dipo_tools.verl_ext.validation import ConfigError, validate_training_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[3]
SHIPPED = sorted(p.name for p in REPO_CONFIG_DIR.glob("*.yaml"))
EXPECTED = {
    "tool_grpo_qwen2.5-3b.yaml", "tool_dapo_qwen2.5-3b.yaml", "tool_dipo_qwen2.5-3b.yaml",
    "tool_grpo_qwen2.5-7b.yaml", "tool_dapo_qwen2.5-7b.yaml", "tool_dipo_qwen2.5-7b.yaml",
    "math_dapo_qwen3-4b-base.yaml", "math_dipo_qwen3-4b-base.yaml", "math_dapo_qwen3-8b-base.yaml",
    "math_dipo_qwen3-8b-base.yaml", "math_dapo_qwen2.5-7b.yaml", "math_dipo_qwen2.5-7b.yaml",
}


def test_the_paper_matrix_is_shipped():
    assert EXPECTED <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_composes_and_validates(name, compose):
    cfg = compose(str(REPO_CONFIG_DIR / name), [])
    notes = validate_training_config(cfg)
    assert all(isinstance(n, str) for n in notes)
    text = (REPO_CONFIG_DIR / name).read_text()
    if not name.startswith("_"):
        assert "# Hardware:" in text and "GB" in text  # GPU count and memory assumption written down
        assert cfg.get("engine") == "verl"
    algo = cfg.algorithm
    # every config runs our estimator, so every run logs the same dipo/* diagnostics; the baselines switch
    # the reallocation off, which leaves verl's GRPO advantages exactly
    assert algo.adv_estimator == "dipo"
    baseline = "grpo" in name or "dapo" in name
    assert algo.dipo.enabled is not baseline
    if not baseline:
        assert algo.dipo.alpha == pytest.approx(0.1)
        assert not algo.filter_groups.enable
    if "dapo" in name:  # zero score variance, the local engine's DAPO rule too
        assert algo.filter_groups.enable and algo.filter_groups.metric == "reward"
    # the FSDP strategy `--cpu-smoke` proves
    assert cfg.actor_rollout_ref.actor.strategy == "fsdp2" and cfg.actor_rollout_ref.ref.strategy == "fsdp2"
    if "dapo" in name or "dipo" in name:  # the DAPO base of both
        assert cfg.actor_rollout_ref.actor.clip_ratio_high == pytest.approx(0.28)
        assert cfg.actor_rollout_ref.actor.loss_agg_mode == "token-mean"
    if name.startswith("math_"):
        assert cfg.reward.reward_manager.name == "dapo"
        assert cfg.reward.reward_kwargs.overlong_buffer_cfg.enable
        assert cfg.reward.reward_kwargs.max_resp_len == cfg.data.max_response_length
    if name.startswith("tool_grpo"):  # ToolRL's train_grpo.sh settings
        a = cfg.actor_rollout_ref
        assert (a.actor.optim.lr, cfg.data.train_batch_size, a.rollout.n) == (1e-6, 512, 4)
        assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (2048, 1024)
        assert not a.actor.use_kl_loss and cfg.trainer.total_epochs == 15
    # the reward goes through verl 0.9.1's reward.* keys (the legacy top-level key is ignored by main_ppo)
    assert cfg.reward.custom_reward_function.path == "pkg://reward"
    assert not (cfg.get("custom_reward_function") or {}).get("path")


def test_dipo_with_dynamic_sampling_is_refused(compose):
    cfg = compose("tool_dipo_qwen2.5-3b", ["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"])
    with pytest.raises(ConfigError, match=r"filter_groups.enable=false"):
        validate_training_config(cfg)
    # the same switch is fine for DAPO
    validate_training_config(compose("tool_dapo_qwen2.5-3b", []))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+algorithm.dipo.beta=1"], r"algorithm.dipo: unknown DiPOConfig field"),
        (["algorithm.dipo.gate=sometimes"], r"algorithm.dipo: .*gate"),
        (["trainer.v1.trainer_mode=separate_async"], r"V1 sync trainer only"),
        (["custom_reward_function.path=/x.py"], r"legacy top-level key"),
        (["reward.custom_reward_function.path=pkg://reward.nope"], r"reward.custom_reward_function: cannot load"),
        (["reward.reward_manager.name=batch"], r"not a registered reward manager"),
        (["dipo_agent.runner.tool_format=xml"], r"dipo_agent.runner"),
        (["actor_rollout_ref.actor.use_dynamic_bsz=false"], r"(?s)verl validate_config: .*micro_batch_size"),
        (["actor_rollout_ref.actor.ppo_mini_batch_size=100"], r"ppo_mini_batch_size=100 must divide"),
    ],
)
def test_bad_settings_are_refused_with_the_key_to_fix(compose, overrides, message):
    cfg = compose("tool_dipo_qwen2.5-3b", overrides)
    with pytest.raises(ConfigError, match=message):
        validate_training_config(cfg)


def test_overlong_shaping_must_match_the_response_length(compose):
    cfg = compose("math_dipo_qwen3-4b-base", ["data.max_response_length=4096"])
    with pytest.raises(ConfigError, match="max_resp_len"):
        validate_training_config(cfg)


def test_resolve_config_names_and_errors(tmp_path):
    assert resolve_config("tool_dipo_qwen2.5-3b")[1] == "tool_dipo_qwen2.5-3b"
    assert resolve_config(None)[1] == "dipo_trainer"
    with pytest.raises(FileNotFoundError, match="shipped"):
        resolve_config("no_such_config")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_config(str(tmp_path / "x.yaml"))


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_launch_scripts_dry_run():
    ok = _run(["bash", "scripts/train_tool.sh", "--dry-run", "dipo", "7b", "trainer.n_gpus_per_node=8",
               "--allow-missing-data"])
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "dry run OK: configs/verl/tool_dipo_qwen2.5-7b.yaml (adv_estimator=dipo" in ok.stdout
    assert "gpus=1x8" in ok.stdout
    bad = _run(["bash", "scripts/train_math.sh", "--dry-run", "dipo", "qwen3-4b-base",
                "algorithm.filter_groups.enable=true"])
    assert bad.returncode == 2 and "filter_groups.enable=false" in bad.stderr
    usage = _run(["bash", "scripts/train_math.sh", "--dry-run", "ppo"])
    assert usage.returncode == 2 and "ALGO must be" in usage.stderr
    missing = _run(["bash", "scripts/train_tool.sh", "--dry-run", "dipo", "3b"])  # data/toolrl/*.parquet absent
    assert missing.returncode == 2 and "data.train_files: not found" in missing.stderr and "--allow-missing-data" in missing.stderr


@pytest.mark.parametrize("override, message", [
    ("actor_rollout_ref.actor.optim.lr=abc", "actor_rollout_ref.actor.optim.lr='abc' must be a number"),
    ("actor_rollout_ref.actor.optim.lr=-5", "actor_rollout_ref.actor.optim.lr=-5 must be > 0"),
    ("actor_rollout_ref.rollout.n=-3", "actor_rollout_ref.rollout.n=-3 must be >= 1"),
    ("data.train_batch_size=abc", "data.train_batch_size='abc' must be an integer"),
    ("data.train_batch_size=2.5", "data.train_batch_size=2.5 must be an integer"),
    ("actor_rollout_ref.actor.optim.lrr=1e-5", "did you mean actor_rollout_ref.actor.optim.lr?"),
    ("+data.max_promt_length=10", "did you mean data.max_prompt_length"),
    ("trainer.n_gpus_per_node=3", "cannot be split across 3 data-parallel GPUs"),
    ("actor_rollout_ref.rollout.tensor_model_parallel_size=4", "tensor_model_parallel_size=4 must divide the 2 GPUs"),
    ("actor_rollout_ref.actor.ppo_mini_batch_size=100", "ppo_mini_batch_size=100 must divide"),
])
def test_dry_run_refuses_what_would_fail_at_run_time(override, message, capsys):
    """One line naming the key and the fix, exit 2 (not a hydra traceback, not an OK)."""
    from dipo_tools.verl_ext.cli import main

    code = main(["--config", "tool_dipo_qwen2.5-3b", "--dry-run", "--allow-missing-data", override])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_dry_run_refuses_unknown_environments_in_the_data(tmp_path, capsys):
    from dipo_tools.data.env_tasks import prepare_env_tasks
    from dipo_tools.verl_ext.cli import main
    from tool_envs.envs.inventory.generate import generate_tasks

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({**t.to_dict(), "envs": ["inventroy"]}) + "\n" for t in generate_tasks(2)))
    prepare_env_tasks(tasks, tmp_path / "train.parquet")
    code = main(["--config", "env_dipo_qwen2.5-3b", "--dry-run", f"data.train_files={tmp_path / 'train.parquet'}",
                 f"data.val_files={tmp_path / 'train.parquet'}"])
    err = capsys.readouterr().err
    assert code == 2 and "names environment 'inventroy'" in err and "did you mean inventory" in err, err


def test_hydra_entry_point_composes_from_the_package(compose):
    """`python -m dipo_tools.verl_ext.main` uses the packaged dipo_trainer config (DiPO by default)."""
    cfg = compose(None, ["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                         "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
                         "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2"])
    assert cfg.algorithm.adv_estimator == "dipo" and cfg.trainer.use_v1 and cfg.trainer.v1.trainer_mode == "sync"
    validate_training_config(cfg)
    out = _run([sys.executable, "-m", "dipo_tools.verl_ext.main", "--help"])
    assert out.returncode == 0 and "adv_estimator: dipo" in out.stdout


def test_env_config_prompt_length_fits_its_generated_tasks(compose, qwen_tokenizer):
    """Every scenario of the BFCL-backend task generator renders (tool schemas included) within the env
    config's data.max_prompt_length, so no training prompt is cut."""
    from tool_envs import env_for_task
    from tool_envs.bfcl_train import SCENARIOS, generate_bfcl_training_tasks
    from tool_envs.runner import RunnerConfig, rendered_prompt_length

    cfg = compose("env_dipo_qwen2.5-3b", [])
    runner = RunnerConfig.from_mapping(cfg.dipo_agent.runner)
    tasks = generate_bfcl_training_tasks(3 * len(SCENARIOS), seed=0)
    longest = max(rendered_prompt_length(qwen_tokenizer, env_for_task(t), t, runner) for t in tasks)
    assert 4096 < longest <= cfg.data.max_prompt_length == cfg.actor_rollout_ref.rollout.prompt_length


def test_baselines_mean_the_same_in_both_engines(compose):
    """DAPO's dynamic sampling and the dual-clip constant agree between the verl configs and the local engine."""
    from dipo_tools.engines.config import ActorConfig

    dapo = compose("tool_dapo_qwen2.5-3b", [])
    dipo = compose("tool_dipo_qwen2.5-3b", [])
    # the local engine's DAPO drops groups whose score has zero variance; verl's metric "reward" is the score
    assert dapo.algorithm.filter_groups.metric == "reward"
    assert ActorConfig().clip_ratio_c == dipo.actor_rollout_ref.actor.clip_ratio_c == dapo.actor_rollout_ref.actor.clip_ratio_c
    assert ActorConfig().clip_ratio_high == dipo.actor_rollout_ref.actor.clip_ratio_high
