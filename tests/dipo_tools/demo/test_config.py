"""The demo config exists once (configs/local/demo.yaml); the package ships it, editable install or wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dipo_tools.demo.run import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[3]
THE_COPY = ROOT / "configs" / "local" / "demo.yaml"


def test_the_packaged_config_is_the_repository_file():
    packaged = Path(DEFAULT_CONFIG)
    assert packaged.is_symlink() and packaged.parent == ROOT / "dipo_tools" / "demo"
    assert os.path.samefile(packaged, THE_COPY)  # one file: an edit of configs/local/demo.yaml is the demo's


@pytest.mark.slow
def test_a_wheel_ships_the_config_content(tmp_path):
    src = tmp_path / "src"  # the sources a wheel is built from, links kept as links
    (src / "configs" / "local").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "example")
    for pkg in ("dipo_tools", "tool_envs", "reward"):
        shutil.copytree(ROOT / pkg, src / pkg, symlinks=True, ignore=ignore)
    shutil.copy(THE_COPY, src / "configs" / "local" / "demo.yaml")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("dipo_tools-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("dipo_tools/demo/demo.yaml") == THE_COPY.read_bytes()
