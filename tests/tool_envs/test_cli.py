"""`python -m tool_envs list | validate | play` and the register_cli hook for the dipo CLI."""
from __future__ import annotations

import argparse
import io
import json
import pathlib
import subprocess
import sys

from tool_envs.cli import main, register_cli, run_parsed
from tool_envs.registry import BUILTIN_DIR


def _run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().out


def test_list(capsys):
    code, out = _run(["list"], capsys)
    assert code == 0
    for name in ("inventory", "gorilla_file_system", "vehicle_control"):
        assert name in out


def test_validate_good_and_bad(tmp_path, capsys):
    code, out = _run(["validate", str(BUILTIN_DIR / "inventory" / "env.yaml"), str(BUILTIN_DIR / "inventory" / "tasks.jsonl")], capsys)
    assert code == 0 and out.count("OK ") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntools: []\n")
    bad_tasks = tmp_path / "bad.jsonl"
    bad_tasks.write_text(json.dumps({"id": "a", "envs": ["inventory"], "turns": [[]], "ground_truth": {"calls": [[{"name": "fly", "arguments": {}}]]}}) + "\n")
    code, out = _run(["validate", str(bad), str(bad_tasks)], capsys)
    assert code == 1
    assert f"ERROR {bad}: $.tools: " in out
    assert "unknown tool 'fly'" in out


def test_play_reads_piped_calls(capsys):
    script = "\n".join([
        'add_stock {"item": "apple", "quantity": 2}',
        "remove_stock(item='apple', quantity=1)",
        '{"name": "check_stock", "arguments": {"item": "apple"}}',
        "[__import__('os').system('touch pwned')]",
        "list_items",
        ":state",
    ])
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["env", "play", "inventory", "--state", '{"inventory": {"stock": {"apple": 1}}}'])
    out = io.StringIO()
    assert args._run(args, out, io.StringIO(script + "\n")) == 0
    text = out.getvalue()
    assert 'add_stock -> {"item": "apple", "added": 2, "quantity": 3}' in text
    assert 'remove_stock -> {"item": "apple", "removed": 1, "quantity": 2}' in text
    assert 'check_stock -> {"item": "apple", "quantity": 2}' in text
    assert "parse error" in text  # the hostile line never runs
    assert '"apple": 2' in text
    assert not pathlib.Path("pwned").exists()


def test_register_cli_mounts_env_commands(capsys):
    parser = argparse.ArgumentParser(prog="dipo")
    register_cli(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["env", "validate", str(BUILTIN_DIR / "math_api" / "env.json")])
    assert run_parsed(args) == 0
    assert "OK " in capsys.readouterr().out
    args = parser.parse_args(["env", "list"])
    assert args.func(args) == 0  # the calling convention of the `dipo` command
    assert "inventory" in capsys.readouterr().out


def test_module_entry_point_with_stdin():
    proc = subprocess.run(
        [sys.executable, "-m", "tool_envs", "play", "inventory", "--tasks", str(BUILTIN_DIR / "inventory" / "tasks.jsonl")],
        input='check_stock {"item": "pear"}\n', capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "check_stock -> " in proc.stdout and "[user]" in proc.stdout
