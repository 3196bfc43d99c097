"""verl's real V1 loop on CPU for every track, as a user runs it: ``dipo train --config ... --cpu-smoke``.

Each run is the real thing end to end (Ray, TransferQueue, FSDP2, ``AgentLoopWorkerTQ``, the ``hf`` rollout
server, the config's reward manager, our trainer and estimator, checkpoint, resume in a new process). The
tests assert what makes a run real, not only that it exits:

* the batch went through verl's TransferQueue agent-loop worker (its off-policy tags became metrics);
* the trainer's weights reached the rollout server and the rollout and actor log-probs agree;
* the ``dipo/*`` metrics are present and finite, and positive non-zero-advantage fraction on a reward with
  in-group variance;
* the DiPO queue after the resume is exactly the saved one, and holds only real responses.

Slow (minutes each on 2 cores); CI runs them.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

# each fixture is a whole smoke run (3-5 min on 2 idle cores, much longer on a loaded machine)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = pathlib.Path(__file__).resolve().parents[3]
VARIANCE_REWARD = pathlib.Path(__file__).with_name("variance_reward.py")
FINITE_DIPO_METRICS = ("frac_hard", "frac_easy", "frac_normal", "disentangled", "psd_error_rate", "n_realloc_hard",
                       "n_realloc_easy", "frac_nonzero_adv", "frac_nonzero_adv_grpo", "success_rate", "queue_size",
                       "padding_rows", "n_undefined_ppl")


def _run(cmd: list[str], out_dir: pathlib.Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERL_", "RAY_ADDRESS"))}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"smoke run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("metrics: "), f"last line must be the metrics path, got {last!r}"
    path = pathlib.Path(last.split(": ", 1)[1])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(out_dir.glob("phase*.log")))
    return {"rows": rows, "logs": logs, "dir": out_dir, "stdout": proc.stdout}


def _dipo_train(config: str, out_dir: pathlib.Path, *overrides: str) -> dict:
    cmd = [sys.executable, "-m", "dipo_tools.cli", "train", "--config", config, "--cpu-smoke",
           "--smoke-dir", str(out_dir), *overrides]
    return _run(cmd, out_dir)


@pytest.fixture(scope="module")
def toolrl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_toolrl")
    return _dipo_train("configs/verl/tool_dipo_qwen2.5-3b.yaml", out, "smoke.samples_per_prompt=4",
                       f"reward.custom_reward_function.path={VARIANCE_REWARD}")


@pytest.fixture(scope="module")
def inventory_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_inventory")
    # resume is proved by the ToolRL and BFCL runs; skipping it here keeps CI within its budget
    return _dipo_train("configs/verl/env_dipo_qwen2.5-3b.yaml", out, "smoke.env=inventory", "smoke.resume=false")


@pytest.fixture(scope="module")
def bfcl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_bfcl")
    return _dipo_train("configs/verl/env_dipo_qwen2.5-3b.yaml", out)


@pytest.fixture(scope="module")
def math_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_math")
    return _run(["bash", "scripts/train_math.sh", "--cpu-smoke", "dipo", "qwen3-4b-base", "--smoke-dir", str(out),
                 "smoke.resume=false"], out)


RUNS = ("toolrl_run", "inventory_run", "bfcl_run", "math_run")
RESUMED_RUNS = ("toolrl_run", "bfcl_run")  # the others run with smoke.resume=false (CI budget)


def _training_rows(run: dict) -> list[dict]:
    return [r for r in run["rows"] if "training/global_step" in r]


@pytest.mark.parametrize("run_name", RUNS)
def test_steps_through_verls_transfer_queue_worker(run_name, request):
    run = request.getfixturevalue(run_name)
    rows = _training_rows(run)
    assert [r["step"] for r in rows] == ([1, 2, 3] if run_name in RESUMED_RUNS else [1, 2])
    assert (run["dir"] / "checkpoints" / "global_step_2").is_dir()
    assert "AgentLoopWorkerTQ pid=" in run["logs"]  # verl's V1 agent-loop worker ran the rollouts
    for row in rows:  # its tags (global-step bounds from the rollout server) reached the trainer's metrics
        assert row["training/off_policy/trajectory_spans/min"] == 1
    assert "metrics: " in run["stdout"] and "cpu smoke passed" in run["stdout"]


@pytest.mark.parametrize("run_name", RUNS)
def test_weights_synced_and_rollout_matches_actor(run_name, request):
    run = request.getfixturevalue(run_name)
    syncs = re.findall(r"\[hf-rollout\] replica 0: loaded (\d+) tensors from the actor", run["logs"])
    assert len(syncs) >= 3 and all(int(n) > 0 for n in syncs)
    for row in _training_rows(run):
        assert row["training/rollout_probs_diff_max"] < 1e-3, row["training/rollout_probs_diff_max"]


@pytest.mark.parametrize("run_name", RUNS)
def test_dipo_metrics_present_and_finite(run_name, request):
    run = request.getfixturevalue(run_name)
    for row in _training_rows(run):
        for key in FINITE_DIPO_METRICS:
            value = row[f"dipo/{key}"]
            assert value is not None and math.isfinite(value), (key, value)
        assert row["dipo/padding_rows"] == 0 or row["dipo/queue_size"] > 0


@pytest.mark.parametrize("run_name", RESUMED_RUNS)
def test_queue_after_resume_is_the_saved_one_and_holds_real_responses_only(run_name, request):
    from dipo_tools.dipo import DiPOState

    run = request.getfixturevalue(run_name)
    saved = DiPOState()
    saved.load_state_dict(torch.load(run["dir"] / "checkpoints" / "global_step_2" / "dipo_state.pt", weights_only=False))
    step3 = _training_rows(run)[2]
    assert step3["dipo/restored_queue_size"] == len(saved) > 0
    assert step3["dipo/restored_queue_fingerprint"] == pytest.approx(saved.fingerprint(), rel=0, abs=1e-9)
    # each step pushes its real responses only: the queue holds the last two batches' responses
    sizes = [r["dipo/queue_size"] for r in _training_rows(run)]
    per_batch = sizes[0]
    assert sizes == [per_batch, 2 * per_batch, 2 * per_batch]


def test_positive_nonzero_advantage_fraction_with_in_group_variance(toolrl_run):
    rows = _training_rows(toolrl_run)
    assert max(r["dipo/frac_nonzero_adv"] for r in rows) > 0
    assert max(r["actor/grad_norm"] for r in rows) > 0  # so the weight-sync check above compared moved weights


def test_math_track_used_the_dapo_reward_managers_overlong_shaping(math_run):
    """A random model never answers (math reward -1) and runs every response to the length limit; only the
    dapo manager's overlong shaping (buffer = half the smoke budget, factor 1) pushes the score below -1."""
    for row in _training_rows(math_run):
        assert row["response_length/clip_ratio"] == 1.0
        assert row["critic/score/max"] == pytest.approx(-2.0)
