"""Shared fixtures of the reward tests: the real ToolRL test rows."""
from __future__ import annotations

import pathlib

import pytest

DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "toolrl_rlla4k_test.parquet"


@pytest.fixture(scope="session")
def rlla_rows() -> list[dict]:
    if not DATA.exists():
        pytest.skip(f"real ToolRL test data not found at {DATA}")
    import pandas as pd

    df = pd.read_parquet(DATA)
    return [
        {"data_source": r.data_source, "ground_truth": r.reward_model["ground_truth"], "extra_info": dict(r.extra_info)}
        for r in df.itertuples()
    ]
