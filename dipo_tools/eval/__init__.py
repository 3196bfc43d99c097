"""Evaluation harnesses: BFCL V3 (``dipo_tools.eval.bfcl``) and math mean@k / maj@k (``dipo_tools.eval.math``).

Both take a policy from :mod:`dipo_tools.eval.policies` (OpenAI-compatible endpoint, in-process transformers
model, or the oracle/empty self-tests) and write ``results.jsonl`` (resumable), ``report.json``,
``report.md`` and ``report.png``. Modules import lazily; nothing here downloads anything.
"""
from __future__ import annotations

__all__ = ["bfcl", "bfcl_scoring", "math", "policies", "policy_base", "endpoint", "hf_policy", "literals",
           "prompts", "report", "official", "cli", "dataclass_args"]
