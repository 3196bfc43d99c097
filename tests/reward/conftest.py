"""Shared fixtures of the reward tests: the real ToolRL test rows."""
from __future__ import annotations

import pytest

@pytest.fixture(scope="session")
def rlla_rows(toolrl_test_parquet) -> list[dict]:
    import pandas as pd

    df = pd.read_parquet(toolrl_test_parquet)
    return [
        {"data_source": r.data_source, "ground_truth": r.reward_model["ground_truth"], "extra_info": dict(r.extra_info)}
        for r in df.itertuples()
    ]
