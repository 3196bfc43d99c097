"""Environment hooks: the environment-specific behaviour that the generic runner and reward call.

An environment names its hook in its schema file (``hook: module:attribute``, an :class:`EnvHook`
instance); without one it gets :data:`GENERIC_HOOK`. The BFCL environments name
``tool_envs.bfcl:BFCL_HOOK``, which applies bfcl-eval's own checkers (so BFCL verdicts stay BFCL's) and
reads BFCL's entry format; no other environment imports bfcl-eval.

The per-turn checks follow the rule BFCL made public, written here once for every other environment:

* **state**: every public attribute (not starting with ``_``) of each ground-truth backend instance
  equals the model's instance's, class by class;
* **response**: every result the ground truth produced in the turn occurs among the model's results so
  far (as a multiset, in any order).

Both return ``{"valid": True}`` or ``{"valid": False, "error_type", "error_message", "details"}`` with
``details["differences"]`` (attribute → values) or ``details["missing_items"]``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

STATE_MISMATCH = "multi_turn:instance_state_mismatch"
RESPONSE_MISMATCH = "multi_turn:execution_response_mismatch"


class EnvHook:
    """Generic behaviour; subclass and override for an environment family (see :class:`tool_envs.bfcl.BfclHook`)."""

    name = "generic"
    #: The user message of a turn that reveals held-out tools but has no user message of its own.
    reveal_message = "More functions are available now; continue with the request."

    def state_check(self, model_backends: Mapping[str, Any], gt_backends: Mapping[str, Any]) -> dict:
        """Compare the backend instances after a turn (keyed by class name, like ``Episode.backends``)."""
        for cls, gt in gt_backends.items():
            model = model_backends[cls]
            differences = {k: {"model": getattr(model, k, None), "ground_truth": v}
                           for k, v in vars(gt).items() if not k.startswith("_") and getattr(model, k, None) != v}
            if differences:
                return {"valid": False, "error_type": STATE_MISMATCH,
                        "error_message": f"Model instance for {cls} does not match the state with ground truth instance.",
                        "details": {"differences": differences}}
        return {"valid": True}

    def response_check(self, model_results: Sequence[str], gt_results: Sequence[str], turn: int) -> dict:
        """Every ground-truth result of turn ``turn`` must occur among the model's results so far."""
        pool = list(model_results)
        missing = []
        for item in gt_results:
            if item in pool:
                pool.remove(item)  # one occurrence per expected result: duplicates must all be there
            else:
                missing.append(item)
        if missing:
            return {"valid": False, "error_type": RESPONSE_MISMATCH,
                    "error_message": f"Model response execution results so far does not contain all the ground "
                                     f"truth response execution results for turn {turn}.",
                    "details": {"missing_items": missing}}
        return {"valid": True}

    def task_from_entry(self, entry: Mapping[str, Any]) -> Any:
        """A :class:`~tool_envs.tasks.Task` from this family's own entry format, or ``None`` if ``entry`` is not one."""
        return None


#: The hook of every environment whose schema file names none.
GENERIC_HOOK = EnvHook()
