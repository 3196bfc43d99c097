"""The PPL queue Q (docs/algorithm.md, "PSD"): training state that must be checkpointed with the model."""
from __future__ import annotations

from typing import Any

import torch


class DiPOState:
    """FIFO of ``(log_ppl, success)`` per batch, holding the most recent ``queue_batches`` batches.

    Extreme groups are pushed too. Tensors are kept on the CPU in float64/bool so that the threshold fit is
    exact and the state is small to save (two batches of 65k responses are about 1.2 MB).
    """

    VERSION = 1

    def __init__(self) -> None:
        self.log_ppl: list[torch.Tensor] = []
        self.success: list[torch.Tensor] = []
        self.num_pushed: int = 0  # batches pushed since the start of training

    def push(self, log_ppl: torch.Tensor, success: torch.Tensor, queue_batches: int) -> None:
        """Append one batch and drop batches older than ``queue_batches``."""
        if log_ppl.shape != success.shape or log_ppl.dim() != 1:
            raise ValueError(f"push expects two [B] tensors, got {tuple(log_ppl.shape)} and {tuple(success.shape)}")
        self.log_ppl.append(log_ppl.detach().to("cpu", torch.float64).clone())
        self.success.append(success.detach().to("cpu", torch.bool).clone())
        self.num_pushed += 1
        del self.log_ppl[:-queue_batches], self.success[:-queue_batches]

    def queue(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything in Q, oldest first."""
        if not self.log_ppl:
            return torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.bool)
        return torch.cat(self.log_ppl), torch.cat(self.success)

    def fingerprint(self) -> float:
        """A number that changes with any queued value or their order (to check a restore is exact)."""
        log_ppl, success = self.queue()
        weights = torch.arange(1, log_ppl.numel() + 1, dtype=torch.float64)
        return float((log_ppl * weights).sum() + (success.to(torch.float64) * weights).sum() * 1e-3)

    def __len__(self) -> int:
        return sum(t.numel() for t in self.log_ppl)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "log_ppl": [t.clone() for t in self.log_ppl],
            "success": [t.clone() for t in self.success],
            "num_pushed": self.num_pushed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version = state.get("version")
        if version != self.VERSION:
            raise ValueError(f"DiPOState version {version!r} cannot be loaded (expected {self.VERSION})")
        if len(state["log_ppl"]) != len(state["success"]):
            raise ValueError("corrupt DiPOState: log_ppl and success hold different numbers of batches")
        self.log_ppl = [torch.as_tensor(t, dtype=torch.float64).clone() for t in state["log_ppl"]]
        self.success = [torch.as_tensor(t, dtype=torch.bool).clone() for t in state["success"]]
        self.num_pushed = int(state["num_pushed"])

    def __repr__(self) -> str:
        return f"DiPOState(batches={len(self.log_ppl)}, responses={len(self)}, pushed={self.num_pushed})"
