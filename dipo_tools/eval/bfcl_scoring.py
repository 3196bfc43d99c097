"""Scoring BFCL entries with bfcl-eval's own rules: single-turn (``ast_checker`` and the relevance rule),
multi-turn (``reward.multi_turn.check_turns``, bfcl's ``multi_turn_checker`` verdicts) and the V3 overall."""
from __future__ import annotations

from typing import Any, Iterable

from reward.multi_turn import check_turns
from tool_envs.bfcl import bfcl_entry_to_task, parse_gt_turn
from tool_envs.parsing import ToolCallParseError
from tool_envs.types import ToolCall

from dipo_tools.eval.bfcl_data import BY_NAME, CATEGORIES, Category, ensure_bfcl_root
from dipo_tools.eval.prompts import DecodeError, PromptConfig, decode_calls


#: Registry key under which this harness calls bfcl's ``ast_checker``. Names are mapped back to bfcl's own
#: (dotted) names before checking, so ``underscore_to_dot`` must be off. No ``_`` in it: bfcl maps ``_`` → ``/``.
CHECKER_MODEL_KEY = "dipo-tools-eval"


# ----------------------------------------------------------------------------------------------------------
# Single-turn scoring (bfcl-eval's ast_checker and relevance rule)


def _ast_checker():
    ensure_bfcl_root()
    # bfcl_eval here, not at the top: its model registry imports every provider SDK (~3 s idle, measured
    # with -X importtime) and it reads BFCL_PROJECT_ROOT at import, which ensure_bfcl_root sets first
    from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING, ModelConfig
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    if CHECKER_MODEL_KEY not in MODEL_CONFIG_MAPPING:
        MODEL_CONFIG_MAPPING[CHECKER_MODEL_KEY] = ModelConfig(
            model_name=CHECKER_MODEL_KEY, display_name="dipo-tools eval", url="", org="dipo-tools",
            license="apache-2.0", model_handler=None, is_fc_model=True, underscore_to_dot=False)
    return ast_checker


def score_single_turn(category: Category | str, check_entry: dict, possible_answer: list | None,
                      raw: str, prompt: PromptConfig, name_map: dict[str, str] | None = None) -> dict[str, Any]:
    """Verdict for one single-turn reply, following bfcl's eval_runner rules.

    ``check_entry`` is the bfcl entry *without* language hints (the checker needs the original Java/JS types).
    Returns ``{"valid", "error_type", "error", "decoded"}``.
    """
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    cat = category if isinstance(category, Category) else BY_NAME[category]
    try:
        decoded = decode_calls(raw, prompt, name_map)
        decode_error = None
    except DecodeError as e:
        decoded, decode_error = None, str(e)

    if cat.kind in ("irrelevance", "relevance"):
        has_call = decode_error is None and not is_empty_output(decoded)
        valid = (not has_call) if cat.kind == "irrelevance" else has_call
        err = None
        if not valid:
            err = "irrelevance_error:decoder_success" if cat.kind == "irrelevance" else "relevance_error:decoder_failed"
        return {"valid": valid, "error_type": err, "error": decode_error, "decoded": decoded}

    if decode_error is not None:
        return {"valid": False, "error_type": "ast_decoder:decoder_failed", "error": decode_error, "decoded": None}
    if not is_function_calling_format_output(decoded):
        return {"valid": False, "error_type": "ast_decoder:decoder_wrong_output_format", "error": None, "decoded": decoded}
    checker = _ast_checker()
    try:
        res = checker(check_entry["function"], decoded, possible_answer, Language(cat.language), cat.data,
                      CHECKER_MODEL_KEY)
    except Exception as e:  # a checker crash on odd model output is that entry's failure, not the run's
        return {"valid": False, "error_type": "ast_checker:exception", "error": repr(e), "decoded": decoded}
    return {"valid": bool(res["valid"]), "error_type": None if res["valid"] else res.get("error_type"),
            "error": None if res["valid"] else res.get("error"), "decoded": decoded}


# ----------------------------------------------------------------------------------------------------------
# Multi-turn checking


def decoded_to_calls(entry: dict, decoded: list[list[list[str]]]) -> list[list[list[Any]]]:
    """bfcl's decoded ``[turn][step][call string]`` → ``[turn][step][ToolCall]``, parsed without eval.

    Positional arguments are named from the backend methods' signatures. A call string our safe parser
    refuses (nested calls, code) becomes a call to an unknown tool, so it fails at execution as a bad call
    does in bfcl (bfcl would ``eval`` it; we never do).
    """
    classes = list(entry["involved_classes"])
    out = []
    for turn in decoded:
        steps = []
        for step in turn:
            try:
                calls = parse_gt_turn(step, classes)
            except ToolCallParseError:  # find the bad string(s); keep the good calls in order
                calls = []
                for s in step:
                    try:
                        calls.extend(parse_gt_turn([s], classes))
                    except ToolCallParseError:
                        calls.append(ToolCall("<unparseable>", {"text": str(s)[:200]}))
            steps.append(calls)
        out.append(steps)
    return out


def bfcl_task(entry: dict, ground_truth: list[list[str]]):
    """A ``tool_envs`` Task for a bfcl multi-turn entry (the envs helper's converter)."""
    return bfcl_entry_to_task(entry, {"id": entry["id"], "ground_truth": ground_truth})


def _check_turns(task, calls) -> dict:
    """The one multi-turn check: ``reward.multi_turn.check_turns`` (tool_envs executor + bfcl's own
    ``state_checker``/``response_checker``); verdict only, it stops at the first failing turn."""
    return check_turns(task, calls, details=False)


def check_multi_turn_entry(entry: dict, decoded: list[list[list[str]]], ground_truth: list[list[str]]) -> dict[str, Any]:
    """bfcl's multi-turn verdict for ``decoded`` (``[turn][step][call string]``), computed without ``eval``.

    Same rules and error types as bfcl's ``_evaluate_single_multi_turn_entry`` + ``multi_turn_checker``:
    ``multi_turn:force_terminated`` when the turn counts differ, then per turn ``empty_turn_model_response``,
    ``instance_state_mismatch``, ``execution_response_mismatch``; turns whose ground truth is empty are not
    checked (their calls still change the state). Returns ``{"valid": bool, "error_type": str | None}``.
    """
    if not isinstance(decoded, list) or len(decoded) != len(ground_truth):
        return {"valid": False, "error_type": "multi_turn:force_terminated"}
    # bfcl drops steps that decode to nothing before checking
    calls = [[step for step in turn if step] for turn in decoded_to_calls(entry, decoded)]
    res = _check_turns(bfcl_task(entry, ground_truth), calls)
    return {"valid": bool(res["valid"]), "error_type": None if res["valid"] else res.get("error_type")}


# ----------------------------------------------------------------------------------------------------------
# V3 overall


def v3_overall(scores: dict[str, dict[str, Any]], full_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """BFCL V3 summary (bfcl.md §6) from per-category ``{"correct", "total"}`` (V3 names).

    simple_AST = mean(simple, java, javascript); Non-Live = mean(simple_AST, multiple, parallel,
    parallel_multiple, irrelevance); Live = entry-count-weighted over the 6 live categories; Multi-Turn =
    mean of the 4; Overall = mean(Non-Live, Live, Multi-Turn). As in bfcl, a missing category counts as 0
    (weighted by its full size when ``full_counts`` is given); ``complete`` says whether any was missing.
    """
    full_counts = full_counts or {}

    def acc(c: str) -> float:
        s = scores.get(c)
        return s["correct"] / s["total"] if s and s["total"] else 0.0

    def mean(xs: Iterable[float]) -> float:
        xs = list(xs)
        return sum(xs) / len(xs)

    simple_ast = mean(acc(c) for c in ("simple", "java", "javascript"))
    non_live = mean([simple_ast] + [acc(c) for c in ("multiple", "parallel", "parallel_multiple", "irrelevance")])
    live_cats = [c.v3 for c in CATEGORIES if c.group == "live"]
    num = den = 0.0
    for c in live_cats:
        n = scores[c]["total"] if c in scores else full_counts.get(c, 0)
        num += acc(c) * n
        den += n
    live = num / den if den else 0.0
    multi = mean(acc(c.v3) for c in CATEGORIES if c.group == "multi_turn")
    present = {c.group: all(x.v3 in scores for x in CATEGORIES if x.group == c.group) for c in CATEGORIES}
    return {
        "overall": mean([non_live, live, multi]),
        "non_live": non_live, "simple_ast": simple_ast, "live": live, "multi_turn": multi,
        "relevance": acc("live_relevance"), "irrelevance": mean([acc("irrelevance"), acc("live_irrelevance")]),
        "complete": all(present.values()), "groups_complete": present,
    }
