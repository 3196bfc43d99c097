"""Math harness: oracle 100%, scripted wrong 0%, mean@k / maj@k / pass@k hand-worked, loaders."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from dipo_tools.eval.math import MathEvalConfig, aggregate, evaluate_math, load_problems
from dipo_tools.eval.policies import MathOraclePolicy, Policy

PROBLEMS = [
    {"id": "p1", "problem": "What is 1/2 + 1/4?", "answer": "\\frac{3}{4}"},
    {"id": "p2", "problem": "What is 6*7?", "answer": "42"},
    {"id": "p3", "problem": "Solve x+1=3.", "answer": "2"},
]


@pytest.fixture
def jsonl(tmp_path):
    p = tmp_path / "toy.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in PROBLEMS) + "\n")
    return p


class Scripted(Policy):
    """Answers sample j of problem i with ``script[id][j]``."""

    kind = "scripted"

    def __init__(self, script):
        self.script = script

    def complete_sample(self, request, j):
        return self.script[request.id][j]


def test_oracle_scores_100_and_writes_reports(jsonl, tmp_path):
    rep = evaluate_math(MathOraclePolicy(), MathEvalConfig(data=[str(jsonl)], output_dir=str(tmp_path / "o"),
                                                           k=2, progress=False))
    d = rep["datasets"]["toy"]
    assert d == {**d, "problems": 3, "mean_at_k": 1.0, "maj_at_k": 1.0, "pass_at_k": 1.0}
    assert "| toy | 3 | 100.00 | 100.00 | 100.00 |" in (tmp_path / "o" / "report.md").read_text()
    assert (tmp_path / "o" / "report.png").exists()


def test_scripted_wrong_answers_score_0(jsonl, tmp_path):
    wrong = {"p1": ["\\boxed{1/2}"], "p2": ["The answer is \\boxed{41}."], "p3": ["no idea"]}
    rep = evaluate_math(Scripted(wrong), MathEvalConfig(data=[str(jsonl)], output_dir=str(tmp_path), progress=False))
    assert rep["datasets"]["toy"]["mean_at_k"] == 0.0 and rep["datasets"]["toy"]["pass_at_k"] == 0.0


def test_mean_maj_pass_at_k_hand_worked(jsonl, tmp_path):
    script = {
        # 2 of 4 right (0.75 and 3/4 are the same answer); majority: 3/4 (2 votes) beats 1/2 (1)  -> maj right
        "p1": ["\\boxed{0.75}", "\\boxed{1/2}", "\\boxed{\\frac{3}{4}}", "no answer"],
        # 1 of 4 right; majority 41 (2 votes) -> maj wrong, pass right
        "p2": ["\\boxed{41}", "\\boxed{42}", "\\boxed{41}", "\\boxed{40}"],
        # 0 of 4 right
        "p3": ["\\boxed{5}", "\\boxed{4}", "\\boxed{5}", "\\boxed{1}"],
    }
    rep = evaluate_math(Scripted(script), MathEvalConfig(data=[str(jsonl)], output_dir=str(tmp_path), k=4,
                                                         progress=False))
    d = rep["datasets"]["toy"]
    assert d["mean_at_k"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert d["maj_at_k"] == pytest.approx(1 / 3)
    assert d["pass_at_k"] == pytest.approx(2 / 3)
    # ties go to the answer seen first
    assert aggregate([{"pred": "1", "success": True}, {"pred": "2", "success": False}])["maj"] is True
    assert aggregate([{"pred": None, "success": False}])["maj"] is False


def test_resume_only_runs_missing_samples(jsonl, tmp_path):
    calls = []

    class Counting(MathOraclePolicy):
        def complete(self, request):
            calls.append(request.id)
            return super().complete(request)

    cfg = MathEvalConfig(data=[str(jsonl)], output_dir=str(tmp_path), k=1, limit=2, progress=False)
    evaluate_math(Counting(), cfg)
    cfg.limit, cfg.k = None, 2
    rep = evaluate_math(Counting(), cfg)
    assert len(calls) == 2 + 4 and rep["datasets"]["toy"]["problems"] == 3


def test_loaders_parquet_verl_layout_and_clear_errors(tmp_path):
    pq = tmp_path / "verl.parquet"
    pd.DataFrame([{"prompt": [{"role": "user", "content": "2+2?"}], "reward_model": {"ground_truth": "4"}}]).to_parquet(pq)
    rows = load_problems(str(pq), MathEvalConfig())
    assert rows[0]["answer"] == "4" and rows[0]["problem"][0]["content"] == "2+2?"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl row 0: cannot find the answer.*--answer-key"):
        load_problems(str(bad), MathEvalConfig())
    bad.write_text('{"question": "x", "answer": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_problems(str(bad), MathEvalConfig())
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_problems(str(tmp_path / "missing.jsonl"), MathEvalConfig())
