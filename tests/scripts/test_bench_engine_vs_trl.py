"""The TRL comparison is optional: without TRL it says how to install the pinned extra and exits 2."""
from __future__ import annotations

import pathlib
import runpy
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_engine_vs_trl.py"


def test_without_trl_it_explains_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` raises ImportError, as when not installed
    main = runpy.run_path(str(SCRIPT), run_name="bench")["main"]
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "TRL is not installed" in err and '-e ".[bench]"' in err


def test_bench_extra_pins_trl():
    import tomllib

    pyproject = tomllib.loads((SCRIPT.parents[1] / "pyproject.toml").read_text())
    bench = pyproject["project"]["optional-dependencies"]["bench"]
    assert [r for r in bench if r.startswith("trl")] == ["trl==1.12.0"]
    assert not any(r.startswith("trl") for r in pyproject["project"]["dependencies"])  # never a runtime dependency
