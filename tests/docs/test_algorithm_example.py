"""The worked example in docs/algorithm.md runs and prints what the page says (so the page cannot go stale)."""
from __future__ import annotations

import pathlib
import re
import runpy

import pytest
import torch

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "algorithm.md"


def _worked_example() -> str:
    text = DOC.read_text()
    section = text.split("### Worked example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_worked_example_gives_the_documented_advantages_and_statistics(tmp_path):
    code = _worked_example()
    script = tmp_path / "worked_example.py"
    script.write_text(code)
    scope = runpy.run_path(str(script))  # the page's own snippet, run as a user would paste it
    documented = [[float(x) for x in row.split(",")]
                  for row in re.findall(r"\[\s*([-0-9., ]+?)\]", code.split("# adv.view(2, 8):", 1)[1])]
    assert torch.allclose(scope["adv"].view(2, 8), torch.tensor(documented), atol=1e-4)
    stats = scope["stats"]
    tau, tau_ppl, p_low, p_high = map(float, re.search(
        r"tau = ([0-9.]+) \(tau_ppl = ([0-9.]+)\), p_low = ([0-9.]+), p_high = ([0-9.]+)", code).groups())
    assert stats["tau"] == pytest.approx(tau, abs=1e-3)
    assert stats["tau_ppl"] == pytest.approx(tau_ppl, abs=1e-2)
    assert stats["p_low"] == pytest.approx(p_low, abs=1e-3)
    assert stats["p_high"] == pytest.approx(p_high, abs=1e-3)
    assert stats["disentangled"] == 1.0
    assert stats["n_realloc_hard"] == 1 and stats["n_realloc_easy"] == 1
    assert stats["frac_nonzero_adv"] == 1.0 and stats["frac_nonzero_adv_grpo"] == 0.0
