"""The local engine honours ``algorithm.dipo.reallocate`` (the one-sided BRR ablation)."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("side", ["hard", "easy"])
def test_one_sided_reallocation_in_training(make_engine, side):
    # gate=none: every extreme group qualifies, so the switch alone decides which side is reallocated
    eng = make_engine("algorithm.name=dipo", "algorithm.dipo.gate=none", f"algorithm.dipo.reallocate={side}", log=False)
    assert eng.dipo_config.reallocate == side
    rows = eng.train(total_steps=2)
    skipped = "dipo/n_realloc_easy" if side == "hard" else "dipo/n_realloc_hard"
    assert all(r[skipped] == 0 for r in rows)
    # the other side had extreme groups to skip: an untrained model fails every task (all groups hard)
    assert any(r["dipo/frac_hard"] > 0 for r in rows)
    kept = "dipo/n_realloc_hard" if side == "hard" else "dipo/n_realloc_easy"
    extreme = "dipo/frac_hard" if side == "hard" else "dipo/frac_easy"
    # whenever this side had extreme groups, they were all reallocated
    for r in rows:
        assert r[kept] == round(r[extreme] * 2)  # 2 tasks per step


def test_bad_reallocate_value_names_the_key(make_cfg):
    from dipo_tools.engines.config import ConfigError

    with pytest.raises(ConfigError, match="algorithm.dipo.*reallocate"):
        make_cfg("algorithm.dipo.reallocate=neither")
