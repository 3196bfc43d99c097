"""``eval bfcl`` / ``eval math`` mounted on an argparse parser, as the ``dipo`` CLI does."""
from __future__ import annotations

import argparse
import json

import pytest

from dipo_tools.eval.cli import register_cli


def _parser():
    p = argparse.ArgumentParser(prog="dipo")
    register_cli(p.add_subparsers(dest="cmd", required=True))
    return p


def test_eval_bfcl_and_math_commands_run(tmp_path, capsys):
    p = _parser()
    args = p.parse_args(["eval", "bfcl", "--policy", "oracle", "--categories", "simple,live_irrelevance", "--limit",
                         "3", "--output-dir", str(tmp_path / "b"), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "BFCL V3 overall" in out and "partial" in out
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["categories"]["simple"]["accuracy"] == 1.0 and rep["categories"]["live_irrelevance"]["accuracy"] == 1.0

    data = tmp_path / "m.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    args = p.parse_args(["eval", "math", "--policy", "oracle", "--data", str(data), "--k", "2", "--output-dir",
                         str(tmp_path / "m"), "--no-progress"])
    assert args.func(args) == 0
    assert "mean@2 100.00" in capsys.readouterr().out


def test_bad_arguments_fail_clearly(tmp_path, capsys):
    p = _parser()
    with pytest.raises(SystemExit):
        p.parse_args(["eval", "bfcl", "--policy", "nope", "--output-dir", str(tmp_path)])
    args = p.parse_args(["eval", "bfcl", "--categories", "memory", "--policy", "oracle", "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown BFCL category 'memory'"):
        args.func(args)
    args = p.parse_args(["eval", "bfcl", "--policy", "endpoint", "--output-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--base-url"):
        args.func(args)
