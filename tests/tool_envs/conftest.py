"""Fixtures shared by the environment-core tests (tests/tool_envs/test_env*.py, test_bfcl*.py, ...)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bfcl_tasks():
    """All 800 BFCL multi-turn entries converted to tasks (from the installed bfcl-eval data)."""
    from tool_envs.bfcl import load_bfcl_tasks

    tasks = load_bfcl_tasks()
    assert len(tasks) == 800
    return tasks


@pytest.fixture(scope="session")
def bfcl_by_id(bfcl_tasks):
    return {t.id: t for t in bfcl_tasks}
