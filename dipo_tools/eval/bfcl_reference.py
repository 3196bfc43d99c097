"""bfcl-eval's own multi-turn checking path, for cross-checks in tests and benchmarks ONLY.

bfcl's ``multi_turn_checker`` ``eval``s every call string and keeps backend instances in module globals
(bfcl.md §3). This module runs it under a fresh model name per call and deletes the instances it created
afterwards, so repeated checks never see stale state. Never feed it model output: product code checks
with :func:`dipo_tools.eval.bfcl.check_multi_turn_entry`, which executes nothing but parsed calls.
"""
from __future__ import annotations

import itertools
import uuid
from typing import Any

from dipo_tools.eval.bfcl_data import ensure_bfcl_root

_counter = itertools.count()


def reference_multi_turn_check(entry: dict, decoded: list[list[list[str]]], ground_truth: list[list[str]]) -> dict[str, Any]:
    """bfcl's verdict: the runner's turn-count and empty-step rules, then ``multi_turn_checker``."""
    ensure_bfcl_root()
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response

    if not isinstance(decoded, list) or len(decoded) != len(ground_truth):
        return {"valid": False, "error_type": "multi_turn:force_terminated"}
    cleaned = [[step for step in turn if not is_empty_execute_response(step)] for turn in decoded]
    model_name = f"refcheck{next(_counter)}x{uuid.uuid4().hex[:8]}"
    try:
        res = multi_turn_checker(cleaned, ground_truth, entry, entry["id"].rsplit("_", 1)[0], model_name)
    finally:
        g = multi_turn_utils.__dict__
        for k in [k for k in g if k.startswith(model_name) and k.endswith("_instance")]:
            del g[k]
    return {"valid": bool(res["valid"]), "error_type": None if res["valid"] else res.get("error_type")}
