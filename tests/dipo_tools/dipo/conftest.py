from __future__ import annotations

import torch

from dipo_tools.dipo import DiPOState


def separable_queue(n_side: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """A history where low PPL means right: n_side right in [0, 1), n_side wrong in [2, 3)."""
    g = torch.Generator().manual_seed(1)
    lp = torch.cat([torch.rand(n_side, generator=g), 2 + torch.rand(n_side, generator=g)])
    return lp, torch.cat([torch.ones(n_side), torch.zeros(n_side)]).bool()


def primed_state(n_side: int = 20) -> DiPOState:
    """A state whose queue already separates right (low PPL) from wrong (high PPL), τ* ≈ 1.5."""
    state = DiPOState()
    lp, ok = separable_queue(n_side)
    state.push(lp, ok, queue_batches=2)
    return state


import pytest  # noqa: E402


@pytest.fixture
def primed():
    """Factory of fresh primed states (tests often need two identical ones)."""
    return primed_state


@pytest.fixture
def separable():
    return separable_queue
