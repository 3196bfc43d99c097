"""Math evaluation: mean@k, maj@k and pass@k with ``reward.math`` (math-verify) over a problem set.

Usage::

    python -m dipo_tools.eval.math --data aime24.jsonl --policy endpoint --base-url http://127.0.0.1:8000/v1 \\
        --model qwen --k 16 --temperature 0.6 --output-dir runs/math_aime24

``--data`` takes JSONL / JSON / parquet files or a hub dataset id (``datasets.load_dataset``; needs the
network or a local cache). Problem and answer columns are detected (``problem``/``question``/``prompt``,
``answer``/``ground_truth``/``solution`` or verl's ``reward_model.ground_truth``) or given explicitly.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import pathlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from reward.math import math_reward
from tqdm.auto import tqdm

from dipo_tools.eval.bfcl import BFCLEvalConfig, add_policy_args, build_policy
from dipo_tools.eval.dataclass_args import add_dataclass_args, dataclass_from_args
from dipo_tools.eval.policies import MathOraclePolicy
from dipo_tools.eval.prompts import PromptConfig, Request
from dipo_tools.eval.report import write_math_report

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PROBLEM_KEYS = ("problem", "question", "prompt", "Problem", "Question")
ANSWER_KEYS = ("answer", "ground_truth", "final_answer", "Answer", "expected_answer", "solution")


@dataclass
class MathEvalConfig:
    """One math evaluation run.

    Attributes:
        data: paths (JSONL, JSON list, parquet) or hub ids; each is reported separately.
        output_dir: ``results.jsonl`` (one row per problem × sample; the resume file) and the reports.
        k: samples per problem. mean@k averages all samples (low variance); maj@k votes over the extracted
            answers; pass@k is any-correct. Use temperature > 0 when k > 1, else the samples are identical.
        problem_key / answer_key / id_key: column names (None = detect).
        instruction: appended to each problem (the usual "put your final answer within \\boxed{}").
        system_prompt: optional system message.
        limit: first N problems of each dataset (smoke runs).
        resume: skip (problem, sample) pairs already in ``results.jsonl``.
    """

    data: list[str] = field(default_factory=list)
    output_dir: str = "math_eval_out"
    k: int = 1
    problem_key: str | None = None
    answer_key: str | None = None
    id_key: str | None = None
    instruction: str = DEFAULT_INSTRUCTION
    system_prompt: str | None = None
    limit: int | None = None
    resume: bool = True
    progress: bool = True


def _read_rows(src: str) -> list[dict]:
    p = pathlib.Path(src)
    if p.exists():
        if p.suffix == ".parquet":
            import pandas as pd  # here, not at the top: only parquet files need it (~0.5 s to import)

            return pd.read_parquet(p).to_dict(orient="records")
        text = p.read_text()
        if p.suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{p}:{i}: not valid JSON ({e.msg}); one JSON object per line expected") from e
        return rows
    if "/" in src and not src.startswith((".", "/")):
        from datasets import load_dataset  # here, not at the top: only hub ids need it (~1 s to import)

        name, _, split = src.partition(":")
        ds = load_dataset(name, split=split or "test")
        return [dict(r) for r in ds]
    raise FileNotFoundError(f"math data {src!r}: no such file, and not a hub id of the form owner/name[:split]")


def _pick(row: dict, explicit: str | None, candidates: tuple[str, ...], what: str, src: str, idx: int) -> Any:
    if explicit:
        if explicit not in row:
            raise ValueError(f"{src} row {idx}: no field {explicit!r} (--{what}-key); fields: {sorted(row)}")
        return row[explicit]
    for k in candidates:
        if k in row and row[k] not in (None, ""):
            return row[k]
    rm = row.get("reward_model")
    if what == "answer" and isinstance(rm, dict) and rm.get("ground_truth") not in (None, ""):
        return rm["ground_truth"]
    raise ValueError(f"{src} row {idx}: cannot find the {what} (tried {list(candidates)}); "
                     f"pass --{what}-key; fields: {sorted(row)}")


def load_problems(src: str, cfg: MathEvalConfig) -> list[dict]:
    """``[{"id", "problem" (str or chat messages), "answer"}]``."""
    out = []
    for i, row in enumerate(_read_rows(src)):
        prob = _pick(row, cfg.problem_key, PROBLEM_KEYS, "problem", src, i)
        if hasattr(prob, "tolist"):
            prob = prob.tolist()
        ans = _pick(row, cfg.answer_key, ANSWER_KEYS, "answer", src, i)
        pid = row.get(cfg.id_key) if cfg.id_key else row.get("id", row.get("unique_id", i))
        out.append({"id": str(pid), "problem": prob, "answer": str(ans)})
    return out[: cfg.limit] if cfg.limit is not None else out


def build_messages(problem: Any, cfg: MathEvalConfig) -> list[dict]:
    if isinstance(problem, list):  # already chat messages (verl parquet)
        return [dict(m) for m in problem]
    msgs = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return msgs + [{"role": "user", "content": f"{problem}\n\n{cfg.instruction}".strip()}]


def _same(a: str, b: str) -> bool:

    if a == b:
        return True
    try:
        return math_reward(f"\\boxed{{{a}}}", b).success
    except ValueError:
        return False


def aggregate(samples: list[dict]) -> dict[str, Any]:
    """mean/maj/pass over one problem's samples (``{"success", "pred"}`` each).

    maj: the samples are grouped by equivalent extracted answers (math-verify), the largest group wins
    (ties: the group seen first); no-answer samples do not vote. Correct iff the winning group is correct.
    """
    k = len(samples)
    groups: list[list[dict]] = []
    for s in samples:
        if s.get("pred") is None:
            continue
        for g in groups:
            if _same(s["pred"], g[0]["pred"]):
                g.append(s)
                break
        else:
            groups.append([s])
    best = max(groups, key=len) if groups else None  # max keeps the first of equal-size groups
    return {"mean": sum(bool(s["success"]) for s in samples) / k if k else 0.0,
            "maj": bool(best and best[0]["success"]), "pass": any(s["success"] for s in samples)}


def evaluate_math(policy, cfg: MathEvalConfig, sampling=None) -> dict[str, Any]:
    if not cfg.data:
        raise ValueError("no math data given (--data PATH_OR_HUB_ID)")
    out = pathlib.Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rpath = out / "results.jsonl"
    if not cfg.resume and rpath.exists():
        rpath.unlink()
    done: dict[tuple[str, str, int], dict] = {}
    if rpath.exists():
        for line in rpath.read_text().splitlines():
            try:
                r = json.loads(line)
                done[(r["dataset"], r["id"], r["sample"])] = r
            except (json.JSONDecodeError, KeyError):
                continue  # torn last line of a killed run: redo that sample
    started = time.time()
    report: dict[str, Any] = {"benchmark": "math", "k": cfg.k, "policy": policy.describe(),
                              "prompt": {"instruction": cfg.instruction, "system_prompt": cfg.system_prompt},
                              "datasets": {}}

    with rpath.open("a") as fh:
        for src in cfg.data:
            name = pathlib.Path(src).stem if pathlib.Path(src).exists() else src
            problems = load_problems(src, cfg)
            if not problems:
                raise ValueError(f"math data {src!r} has no problems")
            if hasattr(policy, "add_answers"):
                policy.add_answers({p["id"]: p["answer"] for p in problems})
            todo = [(p, j) for p in problems for j in range(cfg.k) if (name, p["id"], j) not in done]

            def work(item):
                p, j = item
                req = Request(id=p["id"], category="math", messages=build_messages(p["problem"], cfg), tools=None)
                try:
                    text = policy.complete_sample(req, j) if hasattr(policy, "complete_sample") else policy.complete(req)
                    err = None
                except Exception as e:  # a failed request is a wrong sample, not a crashed run
                    text, err = "", f"{type(e).__name__}: {e}"
                res = math_reward(text, p["answer"], sample_id=p["id"])
                return {"dataset": name, "id": p["id"], "sample": j, "text": text, "pred": res.pred,
                        "answer": p["answer"], "success": res.success, **({"error": err} if err else {})}

            with cf.ThreadPoolExecutor(max(1, int(getattr(policy, "concurrency", 1)))) as pool:
                for row in tqdm(pool.map(work, todo), total=len(todo), desc=name, disable=not cfg.progress):
                    fh.write(json.dumps(row, default=str) + "\n")
                    fh.flush()
                    done[(name, row["id"], row["sample"])] = row
            per = [aggregate([done[(name, p["id"], j)] for j in range(cfg.k)]) for p in problems]
            n = len(per)
            report["datasets"][name] = {
                "source": src, "problems": n,
                "mean_at_k": sum(x["mean"] for x in per) / n if n else 0.0,
                "maj_at_k": sum(x["maj"] for x in per) / n if n else 0.0,
                "pass_at_k": sum(x["pass"] for x in per) / n if n else 0.0,
            }
    report["elapsed_s"] = round(time.time() - started, 2)
    write_math_report(report, out)
    return report


def add_math_args(p: argparse.ArgumentParser) -> None:
    add_policy_args(p)
    add_dataclass_args(p, MathEvalConfig, exclude=("system_prompt",), required=("output_dir", "data"),
                       append=("data",))
    p.add_argument("--concurrency", type=int, default=BFCLEvalConfig.concurrency,
                   help="requests in flight at once (endpoint policy)")


def run_from_args(args: argparse.Namespace) -> int:
    cfg = dataclass_from_args(MathEvalConfig, args)
    if args.policy == "oracle":
        policy = MathOraclePolicy()
    else:
        policy = build_policy(args, PromptConfig(mode="qwen", system_prompt=args.system_prompt))
    rep = evaluate_math(policy, cfg)
    for name, d in rep["datasets"].items():
        print(f"{name}: mean@{cfg.k} {100 * d['mean_at_k']:.2f}  maj@{cfg.k} {100 * d['maj_at_k']:.2f}  "
              f"pass@{cfg.k} {100 * d['pass_at_k']:.2f}  ({d['problems']} problems)")
    print(f"report: {pathlib.Path(cfg.output_dir) / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dipo_tools.eval.math", description=__doc__.split("\n\n")[0])
    add_math_args(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
