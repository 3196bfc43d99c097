"""Fixtures shared by the environment-core tests (tests/tool_envs/test_env*.py, test_bfcl*.py, ...)."""
from __future__ import annotations

import asyncio
import time

import pytest


@pytest.fixture
def run_with_heartbeat():
    """``run(make_awaitable) -> (result, seconds, ticks)``: runs the awaitable in a fresh event loop beside a
    task that ticks every 50 ms, so a test can tell a call that blocks the loop (no ticks) from one awaited."""

    def run(make_awaitable):
        async def main():
            ticks = 0

            async def heartbeat():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            hb = asyncio.ensure_future(heartbeat())
            t0 = time.monotonic()
            result = await make_awaitable()
            elapsed = time.monotonic() - t0
            hb.cancel()
            return result, elapsed, ticks

        return asyncio.run(main())

    return run


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
