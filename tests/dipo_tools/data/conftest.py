"""Shared fixture: the offline tiny tokenizer (byte-level BPE + Qwen-style chat template)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from dipo_tools.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()
