"""The ToolRL reward: real rows, hand-worked corruptions, every published variant, robustness.

Expected values are worked out by hand in the comments (S = matcher score, S_max = 1 + sum(1 + #params)).
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reward.toolrl import (
    GroundTruthError,
    ToolRLConfig,
    extract_assistant_span,
    match_score,
    reward_ranges,
    score_call_lists,
    toolrl_reward,
)
from tool_envs.types import ToolCall

THINK = "<think> plan </think>"


def call_block(*calls: dict | str) -> str:
    lines = [c if isinstance(c, str) else json.dumps(c) for c in calls]
    return f"{THINK}\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


A = {"name": "a", "parameters": {"x": 1, "y": "s"}}
B = {"name": "b", "parameters": {"z": True}}
GT2 = call_block(A, B)  # S_max = 1 + (1 + 2) + (1 + 1) = 6


def approx(x):
    return pytest.approx(x, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------------
def test_real_rows_ground_truth_scores_max_and_succeeds(rlla_rows):
    assert len(rlla_rows) == 80
    n_call = 0
    for row in rlla_rows:
        gt = row["ground_truth"]
        res = toolrl_reward(gt, gt, sample_id=row["extra_info"]["index"])
        has_call = "<tool_call>" in gt
        n_call += has_call
        assert res.success, (row["extra_info"]["index"], res.details)
        assert res.score == (4.0 if has_call else 1.0)
        assert res.format == 1.0 and res.correctness == (3.0 if has_call else 0.0)
    assert n_call == 71


def test_real_rows_wrapped_in_chat_template_score_the_same(rlla_rows):
    for row in rlla_rows[:10]:
        gt = row["ground_truth"]
        decoded = f"<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n{gt}<|im_end|>\n"
        assert toolrl_reward(decoded, gt).score == toolrl_reward(gt, gt).score


def test_real_rows_systematic_corruptions(rlla_rows):
    """Every tool-call row, corrupted the same ways, against values derived from the row's own GT."""
    for row in rlla_rows:
        gt = row["ground_truth"]
        if "<tool_call>" not in gt:
            # Answering with a call where a response is expected: format fails, correctness is neutral.
            res = toolrl_reward(call_block({"name": "x", "parameters": {}}), gt)
            assert (res.score, res.success) == (0.0, False)
            continue
        calls = [json.loads(line) for line in gt.split("<tool_call>\n")[1].split("\n</tool_call>")[0].split("\n")]
        s_max = 1 + sum(1 + len(c["parameters"]) for c in calls)
        # 1. Missing closing tag: format 0, correctness -3.
        assert toolrl_reward(gt.replace("</tool_call>", ""), gt).score == -3.0
        # 2. Extra newline between </think> and <tool_call>: format 0, calls exact (+3).
        res = toolrl_reward(gt.replace("</think>\n", "</think>\n\n"), gt)
        assert (res.score, res.success) == (3.0, False)
        # 3. Bad JSON in the first call: format 1, correctness -3.
        assert toolrl_reward(gt.replace("}}", "}", 1), gt).score == -2.0
        # 4. Wrong name on the first call (unique new name): the name Jaccard drops to (n-1)/(n+1), the
        #    first call's 1 + #params is lost, the other calls still match fully.
        first = calls[0]
        renamed = [dict(first, name=first["name"] + "_zz")] + calls[1:]
        n = len(calls)
        s = (n - 1) / (n + 1) + sum(1 + len(c["parameters"]) for c in calls[1:])
        if sum(c["name"] == first["name"] for c in calls) == 1:
            res = toolrl_reward(call_block(*renamed), gt)
            assert res.correctness == approx(6 * s / s_max - 3)
            assert res.format == 1.0 and not res.success
        # 5. An extra (unrelated) call: names Jaccard n/(n+1), every GT call matched fully.
        extra = calls + [{"name": "zz_extra", "parameters": {}}]
        s = n / (n + 1) + sum(1 + len(c["parameters"]) for c in calls)
        assert toolrl_reward(call_block(*extra), gt).correctness == approx(6 * s / s_max - 3)


# --------------------------------------------------------------------------------------------------
# Hand-worked corruptions of a two-call ground truth
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pred, score, success",
    [
        (GT2, 4.0, True),
        # missing </tool_call>: format 0 + correctness -3
        (GT2.replace("\n</tool_call>", ""), -3.0, False),
        # missing <think>: format 0, calls exact +3
        (GT2.replace("<think> plan </think>", "plan"), 3.0, False),
        # extra newline after </think>: format 0, +3
        (GT2.replace("</think>\n", "</think>\n\n"), 3.0, False),
        # blank line between the calls: format still matches (.*? spans it), json.loads("") fails -> -3
        (call_block(A, "", B), 1.0 - 3.0, False),
        # wrong tool name b->c: names 1/3; a: 1 + 2 = 3; b unmatched. S = 10/3, R = 6*(10/3)/6 - 3 = 1/3
        (call_block(A, dict(B, name="c")), 1.0 + 1 / 3, False),
        # wrong key y->w: keys 1/3, values 1 -> 4/3; b 2; names 1. S = 13/3, R = 4/3
        (call_block({"name": "a", "parameters": {"x": 1, "w": "s"}}, B), 1.0 + 4 / 3, False),
        # "1" vs 1: a keys 1 + value y only 1 = 2; b 2; names 1. S = 5, R = 2
        (call_block({"name": "a", "parameters": {"x": "1", "y": "s"}}, B), 3.0, False),
        # reordered parallel calls: not the reference's exact list, but names Jaccard 1, a 3, b 2 -> S = 6 -> +3;
        # the same calls, so success
        (call_block(B, A), 4.0, True),
        # extra call a(x=2): names 2/3; a best = 3 (the exact one); b 2. S = 17/3, R = 8/3
        (call_block(A, B, {"name": "a", "parameters": {"x": 2}}), 1.0 + 8 / 3, False),
        # missing call b: names 1/2; a 3. S = 7/2, R = 1/2
        (call_block(A), 1.5, False),
        # bad JSON
        (call_block('{"name": "a", "parameters": {"x": 1,}}', B), -2.0, False),
        # "arguments" instead of "parameters" (default config): a's params lookup fails -> -3
        (call_block({"name": "a", "arguments": A["parameters"]}, B), -2.0, False),
        # a second <tool_call> tag: format 0 (tag twice); the block is cut at the next opening tag, as the
        # reference's split does, so only A is read: names 1/2, S = 7/2, R = 1/2
        (f"{THINK}\n<tool_call>\n{json.dumps(A)}\n<tool_call>\n{json.dumps(B)}\n</tool_call>", 0.5, False),
        # a call whose parameters is not an object: -3
        (call_block({"name": "a", "parameters": [1]}, B), -2.0, False),
        # a non-object line: -3
        (call_block("[1, 2]", B), -2.0, False),
        # a name that is not a string is simply a different name: names [a,b] vs [a,["b"]] -> unhashable -> -3
        (call_block(A, {"name": ["b"], "parameters": {"z": True}}), -2.0, False),
    ],
)
def test_two_call_corruptions(pred, score, success):
    res = toolrl_reward(pred, GT2)
    assert res.score == approx(score)
    assert res.success is success


def test_response_only_and_mixed_layouts():
    gt_resp = f"{THINK}\n<response> hi </response>"
    assert toolrl_reward(f"<think>x</think>\n<response> hello </response>", gt_resp).score == 1.0
    assert toolrl_reward(f"<think>x</think>\n<response> a </response><response> b </response>", gt_resp).score == 0.0
    assert toolrl_reward("<response> hello </response>", gt_resp).score == 0.0
    gt_both = GT2 + "\n<response> done </response>"
    res = toolrl_reward(gt_both, gt_both)
    assert (res.score, res.success) == (4.0, True)
    # the same calls without the response: format fails for this GT, calls exact
    assert toolrl_reward(GT2, gt_both).score == 3.0
    gt_think = THINK
    assert toolrl_reward("<think> only </think>", gt_think).score == 1.0
    assert toolrl_reward("<think> only </think> trailing", gt_think).score == 0.0


def test_empty_parameters_call():
    gt = call_block({"name": "now", "parameters": {}})  # S_max = 2
    assert toolrl_reward(gt, gt).score == 4.0
    # same name, extra key: keys [] vs [k] -> 0, names 1 -> S = 1, R = 6*1/2 - 3 = 0
    assert toolrl_reward(call_block({"name": "now", "parameters": {"k": 1}}), gt).correctness == 0.0


# --------------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------------
WRONG_NAME = call_block(A, dict(B, name="c"))  # S = 10/3, S_max = 6
WRONG_KEY = call_block({"name": "a", "parameters": {"x": 1, "w": "s"}}, B)  # fine S = 13/3
REORDERED = call_block(B, A)
NO_CLOSE = GT2.replace("\n</tool_call>", "")


def test_correct_max1():
    cfg = ToolRLConfig.from_env_flags({"CORRECTMAX1": "1"})
    assert cfg.correctness_range == (-1.0, 1.0)
    assert toolrl_reward(GT2, GT2, config=cfg).score == 2.0
    # 2 * (10/3) / 6 - 1 = 1/9
    assert toolrl_reward(WRONG_NAME, GT2, config=cfg).correctness == approx(1 / 9)
    assert toolrl_reward(NO_CLOSE, GT2, config=cfg).score == -1.0


def test_two_stage_break_point():
    cfg = ToolRLConfig.from_env_flags({"MAX1STEP30MAX3": 1})
    assert cfg.scale_schedule == "two_stage"
    assert reward_ranges(cfg, 0) == ((0.0, 1.0), (-1.0, 1.0))
    assert reward_ranges(cfg, 29) == ((0.0, 1.0), (-1.0, 1.0))
    assert reward_ranges(cfg, 30) == ((0.0, 0.5), (-3.0, 3.0))
    assert toolrl_reward(GT2, GT2, step=29, config=cfg).score == 2.0
    assert toolrl_reward(GT2, GT2, step=30, config=cfg).score == 3.5
    assert toolrl_reward(WRONG_NAME, GT2, step=29, config=cfg).score == approx(1 + 1 / 9)
    assert toolrl_reward(WRONG_NAME, GT2, step=30, config=cfg).score == approx(0.5 + 1 / 3)


@pytest.mark.parametrize(
    "step, fmt, cor",
    [
        (0, (-2.0, 2.0), (-2.0, 2.0)),
        # f_hi = 2 - 75/150 = 1.5; f_lo = -2 + 2*75/150 = -1 (cap -1); c = 2 +- 75/150
        (75, (-1.0, 1.5), (-2.5, 2.5)),
        (150, (-1.0, 1.0), (-3.0, 3.0)),
        # past the horizon the formulas keep moving and the clips hold them
        (300, (-1.0, 1.0), (-3.0, 3.0)),
    ],
)
def test_smooth_schedule_break_points(step, fmt, cor):
    cfg = ToolRLConfig.from_env_flags({"SCHEDULEREWARD": "1"})
    assert reward_ranges(cfg, step) == (fmt, cor)
    assert toolrl_reward(GT2, GT2, step=step, config=cfg).score == fmt[1] + cor[1]
    assert toolrl_reward(NO_CLOSE, GT2, step=step, config=cfg).score == fmt[0] + cor[0]


def test_smooth_schedule_midway_value():
    cfg = ToolRLConfig(scale_schedule="smooth")
    # step 30: f = (-2 + 60/150, 2 - 30/150) = (-1.6, 1.8); c = (-2.2, 2.2). Wrong name: 4.4*(10/3)/6 - 2.2
    res = toolrl_reward(WRONG_NAME, GT2, step=30, config=cfg)
    assert res.format == approx(1.8)
    assert res.correctness == approx(4.4 * (10 / 3) / 6 - 2.2)


def test_refined_granularity():
    cfg = ToolRLConfig.from_env_flags({"REFINEDREWARD": "1"})
    # wrong key: keys strict 0, value x 1 -> a = 1; b = 1 + 1; names 1. S = 4, R = 1
    assert toolrl_reward(WRONG_KEY, GT2, config=cfg).correctness == approx(1.0)
    # reordered: names strict 0; a 3; b 2. S = 5, R = 2. Still the same calls -> success
    res = toolrl_reward(REORDERED, GT2, config=cfg)
    assert res.correctness == approx(2.0) and res.success


def test_intermediate_granularity():
    cfg = ToolRLConfig.from_env_flags({"INTERMEDIATEREWARD": "1"})
    # S_max = 1 + 2 = 3; names 1; a inexact 0; b exact 1 -> S = 2, R = 6*2/3 - 3 = 1
    assert toolrl_reward(WRONG_KEY, GT2, config=cfg).correctness == approx(1.0)
    # wrong name: names 1/3; a exact 1; b none -> S = 4/3, R = 6*(4/3)/3 - 3 = -1/3
    assert toolrl_reward(WRONG_NAME, GT2, config=cfg).correctness == approx(-1 / 3)
    # "arguments" calls are only compared as whole dicts here, so no KeyError: names 1, nothing exact -> S=1
    args = call_block({"name": "a", "arguments": A["parameters"]}, {"name": "b", "arguments": B["parameters"]})
    assert toolrl_reward(args, GT2, config=cfg).correctness == approx(6 * 1 / 3 - 3)


def test_coarse_granularity():
    cfg = ToolRLConfig.from_env_flags({"COARSEREWARD": "1"})
    assert toolrl_reward(GT2, GT2, config=cfg).correctness == 3.0
    assert toolrl_reward(WRONG_KEY, GT2, config=cfg).correctness == -3.0
    assert toolrl_reward(REORDERED, GT2, config=cfg).correctness == -3.0


def test_think_length_reward_fixed_and_scheduled():
    def reply(words: int) -> str:
        return "<think>" + " w" * words + " </think>\n<tool_call>\n" + json.dumps(A) + "\n" + json.dumps(B) + "\n</tool_call>"

    fixed = ToolRLConfig.from_env_flags({"WITHLENGTH": "1"})
    assert fixed.length_reward == "fixed"
    assert toolrl_reward(reply(256), GT2, config=fixed).length == 0.5  # 256 / 512
    assert toolrl_reward(reply(256), GT2, config=fixed).score == 4.5
    assert toolrl_reward(reply(3), GT2, config=fixed).length == 0.01  # round(3/512, 2)
    assert toolrl_reward(reply(2000), GT2, config=fixed).length == 1.0  # capped
    assert toolrl_reward("no think at all", GT2, config=fixed).length == 0.0
    sched = ToolRLConfig.from_env_flags({"WITHLENGTH": "1", "SCHEDULELENGTH": "1"})
    assert sched.length_reward == "scheduled"
    assert toolrl_reward(reply(192), GT2, step=0, config=sched).length == 0.5  # 192 / 384
    assert toolrl_reward(reply(320), GT2, step=105, config=sched).length == 0.5  # 320 / 640
    assert toolrl_reward(reply(192), GT2, step=105, config=sched).length == 0.3  # 192 / 640
    # off by default, and SCHEDULELENGTH alone does nothing (as published)
    assert toolrl_reward(reply(256), GT2).length == 0.0
    assert ToolRLConfig.from_env_flags({"SCHEDULELENGTH": "1"}).length_reward == "off"


def test_accept_arguments_key():
    pred = call_block({"name": "a", "arguments": A["parameters"]}, {"name": "b", "arguments": B["parameters"]})
    assert toolrl_reward(pred, GT2).correctness == -3.0
    res = toolrl_reward(pred, GT2, config=ToolRLConfig(accept_arguments_key=True))
    assert (res.score, res.success) == (4.0, True)
    gt_args = call_block({"name": "a", "arguments": {"x": 1}})
    with pytest.raises(GroundTruthError, match="accept_arguments_key"):
        toolrl_reward(gt_args, gt_args)
    assert toolrl_reward(gt_args, gt_args, config=ToolRLConfig(accept_arguments_key=True)).score == 4.0


def test_conflicting_flags_and_bad_config_are_rejected():
    with pytest.raises(ValueError, match="at most one"):
        ToolRLConfig.from_env_flags({"REFINEDREWARD": "1", "COARSEREWARD": "1"})
    with pytest.raises(ValueError, match="granularity"):
        ToolRLConfig(granularity="medium")
    with pytest.raises(ValueError, match="correctness_range"):
        ToolRLConfig(correctness_range=(3, -3))
    with pytest.raises(ValueError, match="valid fields"):
        ToolRLConfig.from_mapping({"granularty": "coarse"})
    assert ToolRLConfig.from_mapping({"correctness_range": [-1, 1]}).correctness_range == (-1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------------
def test_match_score():
    assert match_score(["a", "b"], ["a", "b"]) == 1.0
    assert match_score(["a", "a", "b"], ["a", "b"]) == approx(2 / 3)
    assert match_score([], ["a"]) == 0.0
    assert match_score(["a", "b"], ["b", "a"]) == 1.0
    assert match_score(["a", "b"], ["b", "a"], strict=True) == 0.0


def test_assistant_span():
    text = "<|im_start|>assistant\nold<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n reply \n<|im_end|>"
    assert extract_assistant_span(text) == "reply"
    assert extract_assistant_span("  plain  ") == "plain"
    llama = "<|start_header_id|>assistant<|end_header_id|>\n\nhi<|eot_id|>"
    assert extract_assistant_span(llama, "llama") == "hi"
    assert extract_assistant_span(" x\n", "none") == " x\n"
    # span "none": the trailing newline is scored as given; `$` still matches before one final newline
    assert toolrl_reward(GT2 + "\n", GT2, config=ToolRLConfig(assistant_span="none")).score == 4.0


def test_matcher_accepts_toolcalls_via_dicts():
    from reward.toolrl import calls_to_dicts

    gt = calls_to_dicts([ToolCall("a", {"x": 1, "y": "s"}), ToolCall("b", {"z": True})])
    assert gt == [A, B]
    m = score_call_lists(gt, calls_to_dicts([ToolCall("b", {"z": True}), ToolCall("a", {"x": 1, "y": "s"})]))
    assert m.reward == 3.0 and not m.exact and m.same_calls


def test_malformed_ground_truth_names_the_sample():
    for bad in [
        f"{THINK}\n<tool_call>\nnot json\n</tool_call>",
        f"{THINK}\n<tool_call>\n" + '{"name": "a"}' + "\n</tool_call>",
        f"{THINK}\n<tool_call>\n" + '{"name": "a", "parameters": {}}',
        f"{THINK}\n<tool_call>\n\n</tool_call>",
    ]:
        with pytest.raises(GroundTruthError, match="sample 'row-7'"):
            toolrl_reward(GT2, bad, sample_id="row-7")
    with pytest.raises(GroundTruthError, match="must be a string"):
        toolrl_reward(GT2, None, sample_id=3)  # type: ignore[arg-type]


JUNK = [
    None, "", "<tool_call>", "</tool_call><tool_call>", "<tool_call>\n{}\n</tool_call>",
    "<tool_call>\n" + "[" * 100_000 + "\n</tool_call>", "<tool_call>\n\"str\"\n</tool_call>",
    "<tool_call>\n{\"name\": null}\n</tool_call>", "<tool_call>\n{\"name\": \"a\", \"parameters\": \"x\"}\n</tool_call>",
    "<tool_call>\nNaN\n</tool_call>", "<think></think>\n<tool_call>\n{\"name\": \"a\", \"parameters\": {\"x\": NaN}}\n</tool_call>",
    "\x00\ud800", 12345,
]


@pytest.mark.parametrize("junk", JUNK)
def test_malformed_output_never_raises_and_scores_in_range(junk):
    for cfg in (ToolRLConfig(), ToolRLConfig(granularity="intermediate"), ToolRLConfig(length_reward="fixed")):
        res = toolrl_reward(junk, GT2, config=cfg)  # type: ignore[arg-type]
        assert -3.0 <= res.score <= 5.0 and not res.success
        assert math.isfinite(res.score)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["<think>", "</think>", "<tool_call>", "</tool_call>", "\n", "{", "}", '"name"',
                                 ":", '"a"', '"parameters"', ",", "1", "<response>", "</response>", " x "]), max_size=30))
def test_fuzzed_replies_stay_in_range(parts):
    res = toolrl_reward("".join(parts), GT2)
    assert -3.0 <= res.score <= 4.0
    assert res.success == (res.score == 4.0)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=' \t\r{}[]":,0123456789.eE-+abnrtulsf\\\ufeff', max_size=24))
def test_fast_json_loads_equals_json_loads(text):
    from reward.toolrl import _loads

    try:
        expected = ("ok", json.loads(text))
    except (ValueError, RecursionError) as exc:
        expected = ("err", type(exc))
    try:
        got = ("ok", _loads(text))
    except (ValueError, RecursionError) as exc:
        got = ("err", type(exc))
    if expected[0] == "ok" and isinstance(expected[1], float) and math.isnan(expected[1]):
        assert got[0] == "ok" and math.isnan(got[1])
    else:
        assert got == expected


def test_config_as_mapping():
    assert toolrl_reward(GT2, GT2, config={"correctness_range": [-1, 1]}).score == 2.0
    with pytest.raises(ValueError, match="valid fields"):
        toolrl_reward(GT2, GT2, config={"granularty": "coarse"})
