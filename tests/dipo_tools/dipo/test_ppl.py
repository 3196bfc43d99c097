import math

import pytest
import torch

from dipo_tools.dipo import response_log_ppl


def test_mean_nll_over_masked_tokens_only():
    logp = torch.tensor([[-1.0, -2.0, -9.0, -3.0], [-0.5, float("-inf"), -0.5, 0.0]])
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 0]])
    out = response_log_ppl(logp, mask)
    assert out.tolist() == pytest.approx([2.0, 0.5])  # tool token (-9) and padding (-inf) ignored


def test_empty_response_has_undefined_log_ppl():
    # an all-zero mask (e.g. verl's padding rows) has no perplexity; 0 would rank it the most confident
    out = response_log_ppl(torch.full((2, 3), -5.0), torch.tensor([[0, 0, 0], [1, 0, 0]]))
    assert math.isnan(out[0]) and out[1] == 5.0


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        response_log_ppl(torch.zeros(2, 3), torch.ones(2, 4))
