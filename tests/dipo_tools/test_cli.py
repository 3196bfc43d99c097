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
    p.write_text(text)
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
