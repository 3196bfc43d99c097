"""The `dipo` command: every sub-command's --help, config errors exit non-zero with a clear message."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dipo_tools.cli import main


@pytest.mark.parametrize("argv", [[], ["demo"], ["train"], ["eval"], ["env"], ["data"], ["sweep"]])
def test_help_of_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: dipo" in out


def test_console_script_help_runs_in_a_fresh_process():
    r = subprocess.run([sys.executable, "-m", "dipo_tools.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "demo" in r.stdout and "train" in r.stdout


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text("engine: local\n" + text)  # `dipo train` runs a file only when it names its engine
    return str(p)


def test_bad_key_fails_naming_key_and_allowed(tmp_path, capsys):
    cfg = _yaml(tmp_path, "data:\n  env: inventory\ntrainer:\n  total_stepz: 3\n")
    assert main(["train", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert "trainer.total_stepz" in err and "total_steps" in err and cfg in err


def test_bad_value_fails_naming_allowed_values(tmp_path, capsys):
    cfg = _yaml(tmp_path, "data:\n  env: inventory\nalgorithm:\n  name: ppo\n")
    assert main(["train", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert "algorithm.name" in err and "'dipo', 'grpo', 'dapo'" in err


def test_bad_override_and_type(tmp_path, capsys):
    cfg = _yaml(tmp_path, "data:\n  env: inventory\n")
    assert main(["train", "--config", cfg, "actor.lr=fast"]) == 2
    assert "actor.lr" in capsys.readouterr().err
    assert main(["train", "--config", cfg, "algorithm.name=dipo", "algorithm.dynamic_sampling=true"]) == 2
    assert "dynamic_sampling" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_prints_validated_config(tmp_path, capsys):
    cfg = _yaml(tmp_path, "data:\n  env: inventory\n")
    assert main(["train", "--config", cfg, "--dry-run", "trainer.total_steps=7"]) == 0
    assert "total_steps: 7" in capsys.readouterr().out


def test_shipped_configs_validate(capsys):
    import glob
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    files = glob.glob(str(root / "configs" / "local" / "*.yaml"))
    assert files
    for f in files:
        assert main(["train", "--config", f, "--dry-run"]) == 0, f


TINY = ["model.preset=test", "model.vocab_size=400", "sft.steps=2", "trainer.total_steps=2", "trainer.eval_every=2",
        "trainer.progress=false", "trainer.tensorboard=false", "data.num_train=8", "data.num_eval=2",
        "rollout.tasks_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=16", "rollout.max_response_tokens=64"]


@pytest.mark.slow
def test_train_summary_and_resume_auto(tmp_path, capsys):
    cfg = _yaml(tmp_path, "data:\n  env: inventory\n")
    out_dir = tmp_path / "run"
    # resume=auto with nothing to resume: says so, warms up and trains normally
    assert main(["train", "--config", cfg, *TINY, f"trainer.output_dir={out_dir}", "trainer.resume=auto"]) == 0
    out = capsys.readouterr().out
    assert f"trainer.resume=auto: no checkpoint in {out_dir / 'checkpoints'}; starting from scratch" in out
    assert "[dipo] warm-up: 2 steps" in out
    assert "[dipo] done: 2 steps" in out and "[dipo] final training reward" in out and "[dipo] final held-out reward" in out
    assert f"[dipo] checkpoint: {out_dir / 'checkpoints' / 'step_000002'} (continue with trainer.resume=auto)" in out
    assert f"[dipo] metrics: {out_dir / 'metrics.jsonl'}" in out and f"{out_dir / 'final_model'}" in out
    assert "PNG files in" in out
    # and with a checkpoint: no second warm-up, training continues from it
    assert main(["train", "--config", cfg, *TINY, "trainer.total_steps=3", f"trainer.output_dir={out_dir}", "trainer.resume=auto"]) == 0
    out = capsys.readouterr().out
    assert "warm-up" not in out and f"resumed from {out_dir / 'checkpoints' / 'step_000002'} at step 2" in out
    assert "[dipo] done: 3 steps" in out


@pytest.mark.slow
def test_ctrl_c_prints_the_last_checkpoint_and_the_resume_command(tmp_path):
    import os
    import pathlib
    import signal
    import time

    cfg = _yaml(tmp_path, "data:\n  env: inventory\n")
    out_dir = tmp_path / "run"
    args = [sys.executable, "-m", "dipo_tools.cli", "train", "--config", cfg, *TINY, "trainer.total_steps=10000",
            "trainer.save_every=1", "trainer.eval_every=0", f"trainer.output_dir={out_dir}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(pathlib.Path(__file__).resolve().parents[2]))
    deadline = time.time() + 300
    while not (out_dir / "checkpoints").is_dir() or not os.listdir(out_dir / "checkpoints"):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGUSR1)  # every thread's stack to stderr, and the run goes on (dipo_tools.cli.main)
    time.sleep(1.0)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # still running: fail with every thread's stack (see dipo_tools.cli.main)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(5)
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"dipo train did not stop within 120 s of Ctrl-C; its stacks:\n{err[-20000:]}") from None
    assert proc.returncode == 130, err
    assert "most recent call first" in err and "dipo_tools/cli.py" in err  # the SIGUSR1 dump
    assert "Traceback" not in err
    assert f"[dipo] interrupted: the last checkpoint is {out_dir / 'checkpoints'}/step_" in err
    assert f"[dipo] resume with: dipo train --config {cfg} " in err and err.rstrip().endswith("trainer.resume=auto")

