"""Math reward: math-verify verdicts on equivalent forms, both answer conventions, wrong and missing answers."""
from __future__ import annotations

import threading

import pytest

from reward.math import MathConfig, extract_answer_line, math_reward


@pytest.mark.parametrize(
    "reply",
    [
        "Reasoning... so the answer is \\boxed{\\frac{1}{2}}.",
        "Thus $\\boxed{0.5}$",
        "\\boxed{1/2}",
        "\\boxed{\\dfrac12}",
        "Reasoning.\nAnswer: 1/2",
        "Reasoning.\nAnswer: 0.5",
        "Reasoning.\nanswer: \\frac{1}{2}.",
        "Reasoning.\nAnswer: $\\frac{2}{4}$",
        "first try \\boxed{3} ... no wait.\nAnswer: 0.50",
    ],
)
def test_equivalent_forms_are_correct(reply):
    res = math_reward(reply, "\\frac{1}{2}")
    assert (res.score, res.success) == (1.0, True), res


@pytest.mark.parametrize("reply", ["\\boxed{1/3}", "Answer: 2", "Answer: -1/2", "\\boxed{\\frac{\\sqrt{2}}{2}}"])
def test_wrong_answers(reply):
    res = math_reward(reply, "1/2")
    assert (res.score, res.success) == (-1.0, False)
    assert res.pred is not None


@pytest.mark.parametrize("reply", ["", "I do not know.", None, "\\boxed{", "Answer:"])
def test_no_answer_scores_minimum(reply):
    res = math_reward(reply, "1/2")  # type: ignore[arg-type]
    assert (res.score, res.success) == (-1.0, False)


def test_answer_line_wins_over_earlier_boxed():
    # DAPO: the final "Answer:" line is the answer; an earlier boxed draft does not count.
    assert math_reward("\\boxed{7}\nAnswer: 12", "12").success
    assert not math_reward("\\boxed{12}\nAnswer: 7", "12").success
    # without the answer-line convention the last boxed value is read from the text
    assert math_reward("\\boxed{12}\nAnswer: 7", "12", MathConfig(use_answer_line=False)).success


def test_numeric_ground_truth_and_custom_scores():
    assert math_reward("Answer: 42", 42).success
    res = math_reward("Answer: 41", 42, MathConfig(correct_score=1.0, incorrect_score=0.0))
    assert res.score == 0.0


def test_only_reply_tail_is_read():
    long = "\\boxed{1/2}" + " filler" * 200 + "\nAnswer: 3"
    assert not math_reward(long, "1/2").success
    assert math_reward("Answer: 3\n" + " x" * 10, "3").success


def test_bad_ground_truth_names_sample():
    with pytest.raises(ValueError, match="sample 'q9'"):
        math_reward("\\boxed{1}", "", sample_id="q9")
    with pytest.raises(ValueError, match="sample 5"):
        math_reward("\\boxed{1}", None, sample_id=5)  # type: ignore[arg-type]


def test_works_from_a_worker_thread():
    # verl calls reward functions from executor threads, where signal-based timeouts are unavailable.
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", math_reward("Answer: \\frac{3}{6}", "0.5")))
    t.start()
    t.join()
    assert out["r"].success


def test_extract_answer_line():
    assert extract_answer_line("a\nAnswer: 5\nmore\n**Answer:** 6") == "6"
    assert extract_answer_line("no line") is None
