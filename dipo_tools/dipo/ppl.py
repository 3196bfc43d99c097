"""Per-response log-perplexity (docs/algorithm.md, "PPL")."""
from __future__ import annotations

import torch


def response_log_ppl(token_logprobs: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-prob over the masked (model-generated) tokens of each response.

    ``log_ppl_i = -(sum_t m_it * logp_it) / sum_t m_it``. Tool-output tokens carry mask 0 and do not count.
    A response with no generated token (e.g. verl's padding rows) gets NaN: its perplexity is undefined,
    and :func:`~dipo_tools.dipo.compute_dipo_advantages` leaves it out of the queue and the max-PPL choice.

    Args:
        token_logprobs: ``[B, T]`` old-policy log-probs of the response tokens.
        response_mask: ``[B, T]`` 1 for generated tokens, 0 for tool/user/padding tokens.
    Returns:
        ``[B]`` float tensor (float32 at least).
    """
    if token_logprobs.shape != response_mask.shape:
        raise ValueError(
            f"token_logprobs {tuple(token_logprobs.shape)} and response_mask {tuple(response_mask.shape)} "
            "must have the same shape [batch, response_length]"
        )
    dtype = torch.promote_types(token_logprobs.dtype, torch.float32)
    mask = response_mask.to(dtype)
    # where() rather than multiply: padding positions may hold -inf log-probs.
    total = torch.where(mask > 0, token_logprobs.to(dtype), torch.zeros((), dtype=dtype)).sum(-1)
    count = mask.sum(-1)
    nan = torch.full_like(total, float("nan"))
    return torch.where(count > 0, -total / count.clamp_min(1.0), nan)
