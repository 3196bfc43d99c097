"""The import contract (.importlinter) holds on the tree, and `lint-imports` fails on a back-edge."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / ".importlinter"
PACKAGES = ("dipo_tools", "tool_envs", "reward")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """Run the `lint-imports` of this interpreter's environment on the packages under ``tree``."""
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), "lint-imports is missing: pip install -c requirements/constraints.txt -e '.[test]'"
    # The tree first on the path: the packages may also be installed (editable) from another checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([str(exe), "--config", str(CONTRACT), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_the_contract():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def copy_sources(dst: Path) -> None:
    """The Python sources of the three packages only (no data files): enough for an import graph."""
    keep_py = lambda folder, names: [n for n in names if not n.endswith(".py") and not (Path(folder) / n).is_dir()]
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=keep_py)


@pytest.mark.parametrize("module, import_line, contract", [
    ("tool_envs/back_edge.py", "import reward.toolrl", "One-way layers"),              # environment -> reward
    ("reward/back_edge.py", "from dipo_tools.engines import config", "One-way layers"),  # reward -> engine
    ("dipo_tools/dipo/back_edge.py", "import verl", "The DiPO core is pure torch"),   # core -> trainer library
    ("dipo_tools/verl_ext/back_edge.py", "import dipo_tools.eval.report", "Engines and integrations"),
])
def test_a_back_edge_breaks_the_contract(tmp_path, module, import_line, contract):
    copy_sources(tmp_path)
    assert lint_imports(tmp_path).returncode == 0  # the copy alone keeps it
    # a function-level import counts as much as one at the top: the graph must not hide it
    (tmp_path / module).write_text(f"def late():\n    {import_line}\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    broken = run.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and "back_edge" in broken, run.stdout
