"""Benchmark ``reward.toolrl.toolrl_reward`` against a straightforward port of the published ToolRL rules.

The port below follows the published description step by step (split strings, parse the ground truth on
every call, re-evaluate the variant switches every time), with the environment variables replaced by
arguments and the debug printing left out. Both are run on the same 10,000 (solution, ground truth) pairs
built from the 80 real ToolRL test rows (ground truth + systematic corruptions, several samples per
prompt as in GRPO groups); every pair must score identically under every published variant before the
timing counts. Last line: ``ratio_ours_over_reference=<x>`` (time ours / time reference; goal <= 1.0).

Usage: python scripts/bench_reward.py [--pairs 10000] [--data path/to/test.parquet]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import re
import sys
import time
from collections import Counter

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reward.toolrl import ToolRLConfig, toolrl_reward  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "toolrl_rlla4k_test.parquet"


# --------------------------------------------------------------------------------------------------
# Reference port (flags: correctmax1, max1step30max3, schedulereward, refined, intermediate, coarse,
# withlength, schedulelength)
# --------------------------------------------------------------------------------------------------
def ref_match_score(list1, list2, flags):
    if list1 == list2:
        return 1.0
    if flags.get("refined"):
        return 0.0
    if not list1 or not list2:
        return 0.0
    c1, c2 = Counter(list1), Counter(list2)
    inter = sum(min(c1[k], c2[k]) for k in c1.keys() & c2.keys())
    union = len(list1) + len(list2) - inter
    return inter / union if union > 0 else 0.0


def ref_format(response, answer, step, hi, lo, flags):
    if flags.get("max1step30max3") and step >= 30:
        hi, lo = hi / 2, lo / 2
    if flags.get("schedulereward"):
        hi = 2 - (2 - hi) * step / 150
        lo = -2 + (2 + lo) * step / 150
        if hi < 1.0:
            hi = 1.0
        if lo > -1.0:
            lo = -1.0
    reward = lo
    if "<response>" in answer and "<tool_call>" not in answer:
        if (re.search(r"^<think>.*?</think>\n<response>.*?</response>$", response, re.DOTALL)
                and response.count("<response>") == 1 and response.count("</response>") == 1):
            reward = hi
    elif "<response>" not in answer and "<tool_call>" in answer:
        if (re.search(r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>$", response, re.DOTALL)
                and response.count("<tool_call>") == 1 and response.count("</tool_call>") == 1):
            reward = hi
    elif "<response>" in answer and "<tool_call>" in answer:
        if (re.search(r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>\n<response>.*?</response>$", response, re.DOTALL)
                and response.count("<tool_call>") == 1 and response.count("</tool_call>") == 1
                and response.count("<response>") == 1 and response.count("</response>") == 1):
            reward = hi
    else:
        if re.search(r"^<think>.*?</think>$", response, re.DOTALL):
            reward = hi
    return reward


def ref_length(response, step, hi, lo, flags):
    target = (640 - 384) * step / 105 + 384 if flags.get("schedulelength") else 512
    if "<think>" not in response or "</think>" not in response:
        return lo
    think = response.split("<think>")[-1].split("</think>")[0].strip()
    r = round(len(think.split()) / target, 2)
    if r > 1.0:
        r = 1.0
    return r * (hi - lo) + lo


def ref_tool_reward(gt_tools, pd_tools, hi, lo, flags):
    if gt_tools == pd_tools:
        return hi
    if flags.get("coarse"):
        return lo
    score = ref_match_score([t["name"] for t in gt_tools], [t["name"] for t in pd_tools], flags)
    local_max = 1.0
    used = set()
    for gt in gt_tools:
        local_max += 1.0 if flags.get("intermediate") else 1.0 + len(gt["parameters"])
        best, best_score, best_idx = None, 0.0, -1
        for i, pd in enumerate(pd_tools):
            if i in used or pd["name"] != gt["name"]:
                continue
            if flags.get("intermediate"):
                if gt == pd:
                    best, best_idx, best_score = pd, i, 1.0
                    break
                continue
            params = pd["parameters"]
            total = ref_match_score(list(gt["parameters"].keys()), list(params.keys()), flags)
            total += sum(1.0 for k, v in gt["parameters"].items() if k in params and params[k] == v)
            if total > best_score:
                best, best_score, best_idx = pd, total, i
        if best:
            used.add(best_idx)
            score += best_score
    return (hi - lo) * score / local_max + lo


def ref_correctness(response, answer, step, hi, lo, flags):
    if flags.get("max1step30max3") and step < 30:
        hi, lo = hi / 3, lo / 3
    if flags.get("schedulereward"):
        hi = (hi - 2) * step / 150 + 2
        lo = (lo + 2) * step / 150 - 2
        if hi > 3.0:
            hi = 3.0
        if lo < -3.0:
            lo = -3.0
    if "<tool_call>" not in answer:
        return 0.0
    gt_tools = [json.loads(t) for t in answer.split("<tool_call>")[1].split("</tool_call>")[0].strip().split("\n")]
    try:
        assert "<tool_call>" in response and "</tool_call>" in response
        pd_tools = [json.loads(t) for t in response.split("<tool_call>")[1].split("</tool_call>")[0].strip().split("\n")]
        return ref_tool_reward(gt_tools, pd_tools, hi, lo, flags)
    except Exception:
        return lo


def reference_score(solution, ground_truth, step=0, flags=None):
    flags = flags or {}
    predict = solution.split("<|im_start|>assistant")[-1].split("<|im_end|>")[0].strip()
    c_hi, c_lo = (1.0, -1.0) if flags.get("correctmax1") else (3.0, -3.0)
    fmt = ref_format(predict, ground_truth, step, 1.0, 0.0, flags)
    cor = ref_correctness(predict, ground_truth, step, c_hi, c_lo, flags)
    length = ref_length(predict, step, 1.0, 0.0, flags) if flags.get("withlength") else 0
    return fmt + cor + length, fmt, cor, length


# --------------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------------
def _corruptions(gt: str, rng: random.Random) -> list[str]:
    out = [gt, gt, "<|im_start|>assistant\n" + gt + "<|im_end|>", gt.replace("</think>\n", "</think>\n\n"),
           gt.replace("</tool_call>", ""), gt.replace("}}", "}", 1), gt.replace("<think>", ""), "garbage"]
    if "<tool_call>" in gt:
        body = gt.split("<tool_call>\n")[1].split("\n</tool_call>")[0]
        calls = [json.loads(x) for x in body.split("\n")]
        head = gt.split("<tool_call>")[0]

        def block(cs):
            return head + "<tool_call>\n" + "\n".join(json.dumps(c) for c in cs) + "\n</tool_call>"

        c0 = calls[0]
        params = dict(c0["parameters"])
        if params:
            k = rng.choice(sorted(params))
            v = params[k]
            wrong_type = str(v) if not isinstance(v, str) else (int(v) if v.isdigit() else v + "x")
            out.append(block([dict(c0, parameters=dict(params, **{k: wrong_type}))] + calls[1:]))
            renamed = {(kk + "_" if kk == k else kk): vv for kk, vv in params.items()}
            out.append(block([dict(c0, parameters=renamed)] + calls[1:]))
        out += [
            block([dict(c0, name=c0["name"] + "X")] + calls[1:]),
            block(list(reversed(calls))),
            block(calls + [{"name": "extra", "parameters": {"q": 1}}]),
            block(calls[:-1]) if len(calls) > 1 else block([]),
            block([{"name": c["name"], "arguments": c["parameters"]} for c in calls]),
            gt + "\n<response> ok </response>",
        ]
    else:
        out.append(gt.split("<response>")[0] + "<tool_call>\n{\"name\": \"x\", \"parameters\": {}}\n</tool_call>")
    return out


def build_pairs(gts: list[str], n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    pool = [(sol, gt) for gt in gts for sol in _corruptions(gt, rng)]
    pairs = []
    while len(pairs) < n:  # groups of 8 samples for one prompt, as a GRPO batch
        gt = rng.choice(gts)
        cands = [p for p in pool if p[1] is gt]
        step = rng.randrange(0, 200)
        pairs += [(sol, gt, step) for sol, _ in rng.choices(cands, k=8)]
    return pairs[:n]


VARIANTS = {
    "default": {},
    "CORRECTMAX1": {"correctmax1": 1},
    "MAX1STEP30MAX3": {"max1step30max3": 1},
    "SCHEDULEREWARD": {"schedulereward": 1},
    "REFINEDREWARD": {"refined": 1},
    "INTERMEDIATEREWARD": {"intermediate": 1},
    "COARSEREWARD": {"coarse": 1},
    "WITHLENGTH": {"withlength": 1},
    "WITHLENGTH+SCHEDULELENGTH": {"withlength": 1, "schedulelength": 1},
}


def config_for(flags: dict) -> ToolRLConfig:
    names = {"correctmax1": "CORRECTMAX1", "max1step30max3": "MAX1STEP30MAX3", "schedulereward": "SCHEDULEREWARD",
             "refined": "REFINEDREWARD", "intermediate": "INTERMEDIATEREWARD", "coarse": "COARSEREWARD",
             "withlength": "WITHLENGTH", "schedulelength": "SCHEDULELENGTH"}
    return ToolRLConfig.from_env_flags({names[k]: "1" for k in flags})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import pandas as pd

    gts = [r["ground_truth"] for r in pd.read_parquet(args.data).reward_model]
    pairs = build_pairs(gts, args.pairs)
    print(f"{len(pairs)} pairs from {len(gts)} ground truths")

    for name, flags in VARIANTS.items():
        cfg = config_for(flags)
        for sol, gt, step in pairs:
            ours = toolrl_reward(sol, gt, step, cfg)
            ref = reference_score(sol, gt, step, flags)
            if (ours.score, ours.format, ours.correctness, ours.length) != ref:
                raise SystemExit(f"MISMATCH [{name}] step={step}\nsolution={sol!r}\ngt={gt!r}\nours={ours}\nref={ref}")
        print(f"equal on all {len(pairs)} pairs: {name}")

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for sol, gt, step in pairs:
                fn(sol, gt, step)
            best = min(best, time.perf_counter() - t0)
        return best

    cfg = ToolRLConfig()
    t_ref = timed(lambda s, g, k: reference_score(s, g, k))
    t_ours = timed(lambda s, g, k: toolrl_reward(s, g, k, cfg))
    print(f"reference: {t_ref * 1e6 / len(pairs):.1f} us/pair   ours: {t_ours * 1e6 / len(pairs):.1f} us/pair")
    print(f"ratio_ours_over_reference={t_ours / t_ref:.3f}")


if __name__ == "__main__":
    main()
