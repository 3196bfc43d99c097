"""The demo report's plain-language reading: states the noise and sends the reader to the seeded study."""
from __future__ import annotations

import pathlib

from dipo_tools.demo.run import STUDY, _honest_reading

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _summary(s0: float, s1: float) -> dict:
    nan = float("nan")
    return dict(r0=0.3, r1=0.4, s0=s0, s1=s1, f0=0.5, f1=0.6, nz=0.8, nz_grpo=0.7, hard=3, easy=5, dis=0.8,
                fe=0.3, fh=0.2, e0=nan, e1=nan)


def test_one_seed_is_not_over_read_and_the_study_is_cited():
    lines = _honest_reading({"dipo": _summary(0.16, 0.21), "grpo": _summary(0.16, 0.25)}, n_eval=151)
    text = "\n".join(lines)
    assert "within noise" in text and "smaller than two standard errors" in text
    assert text.count(STUDY) == 2
    assert (ROOT / STUDY).is_file()  # the citation points at a committed document
