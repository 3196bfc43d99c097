"""Multi-turn BFCL: episodes through the shared runner, and check_multi_turn_entry == bfcl's checker."""
from __future__ import annotations

import json
import random


from dipo_tools.eval.bfcl import BFCLEvalConfig, check_multi_turn_entry, evaluate_bfcl
from dipo_tools.eval.bfcl_data import load_category
from dipo_tools.eval.bfcl_reference import reference_multi_turn_check
from dipo_tools.eval.policies import EmptyPolicy, OraclePolicy
from dipo_tools.eval.prompts import PromptConfig

MT = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]


def _all_mt():
    out = []
    for c in MT:
        entries, answers = load_category(c)
        out += [(e, a["ground_truth"]) for e, a in zip(entries, answers)]
    return out


def test_oracle_solves_all_800_multi_turn_entries_through_the_runner(tmp_path, tiny_tokenizer):
    # Qwen's pre-tokenizer (which the tiny tokenizer shares) writes every digit as a token: 32 long-context
    # episodes need more than the default 32,768 response tokens even with the ground-truth answers
    cfg = BFCLEvalConfig(categories="multi_turn", output_dir=str(tmp_path), progress=False, concurrency=8,
                         max_response_tokens=65536)
    report = evaluate_bfcl(OraclePolicy(cfg.prompt, tokenizer=tiny_tokenizer), cfg)
    assert {k: (v["correct"], v["total"]) for k, v in report["categories"].items()} == {c: (200, 200) for c in MT}
    assert report["summary"]["multi_turn"] == 1.0
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    # miss_func: the reveal turn exists and is answered (the turn before it has an empty ground truth)
    r = rows["multi_turn_miss_func_0"]
    assert len(r["result"]) == len(load_category("multi_turn_miss_func")[1][0]["ground_truth"])
    assert r["decoded"][0][0].startswith("[") and r["stop_reason"] == "done"


def test_oracle_toolrl_mode_and_empty_policy(tmp_path, tiny_tokenizer):
    cfg = BFCLEvalConfig(categories="multi_turn", output_dir=str(tmp_path / "o"), limit=6, progress=False,
                         prompt=PromptConfig("toolrl"))
    rep = evaluate_bfcl(OraclePolicy(cfg.prompt, tokenizer=tiny_tokenizer), cfg)
    assert all(v["accuracy"] == 1.0 for v in rep["categories"].values())
    cfg = BFCLEvalConfig(categories="multi_turn", output_dir=str(tmp_path / "e"), limit=6, progress=False)
    rep = evaluate_bfcl(EmptyPolicy(cfg.prompt, tokenizer=tiny_tokenizer), cfg)
    assert all(v["accuracy"] == 0.0 for v in rep["categories"].values())
    assert all(set(v["errors"]) == {"multi_turn:empty_turn_model_response"} for v in rep["categories"].values())


def test_check_agrees_with_bfcl_on_all_ground_truths():
    for entry, gt in _all_mt():
        decoded = [[turn] if turn else [] for turn in gt]
        ours = check_multi_turn_entry(entry, decoded, gt)
        assert ours == {"valid": True, "error_type": None}, entry["id"]
        assert reference_multi_turn_check(entry, decoded, gt) == ours, entry["id"]


def _mutations(gt: list[list[str]], rng: random.Random):
    """(kind, decoded ``[turn][step][call string]``) variants of a ground truth: every kind the issue lists,
    plus calls spread over several steps and a missing last turn."""
    from tool_envs.parsing import format_tool_calls, parse_tool_calls

    turns = [list(t) for t in gt]
    nonempty = [i for i, t in enumerate(turns) if t]
    out = []
    t = rng.choice(nonempty)
    # wrong argument: change one literal argument of one call
    i = rng.randrange(len(turns[t]))
    call = parse_tool_calls(turns[t][i], "python")[0]
    args = dict(call.arguments)
    if args:
        k = rng.choice(sorted(args))
        v = args[k]
        args[k] = (v + 1) if isinstance(v, (int, float)) and not isinstance(v, bool) else (
            (not v) if isinstance(v, bool) else (str(v) + "_x") if isinstance(v, str) else [])
        mutated = [list(x) for x in turns]
        mutated[t][i] = format_tool_calls([type(call)(call.name, args)], "python")[1:-1]
        out.append(("wrong_argument", mutated))
    # dropped call
    mutated = [list(x) for x in turns]
    del mutated[t][rng.randrange(len(mutated[t]))]
    out.append(("dropped_call", mutated))
    # extra call: repeat one call of the turn
    mutated = [list(x) for x in turns]
    mutated[t].append(rng.choice(mutated[t]))
    out.append(("extra_call", mutated))
    # wrong turn order
    if len(turns) > 1:
        a, b = rng.sample(range(len(turns)), 2)
        mutated = [list(x) for x in turns]
        mutated[a], mutated[b] = mutated[b], mutated[a]
        out.append(("turn_order", mutated))
    # empty turn
    mutated = [list(x) for x in turns]
    mutated[t] = []
    out.append(("empty_turn", mutated))
    # calls split over several steps, and a trailing turn missing (force-terminated)
    one_step = [(k, [[t] if t else [] for t in d]) for k, d in out + [("missing_turn", turns[:-1])]]
    return one_step + [("split_steps", [[[c] for c in t] for t in turns])]


def test_check_agrees_with_bfcl_on_seeded_mutations():
    rng = random.Random(1234)
    data = _all_mt()
    sample = rng.sample(data, 120)
    kinds: dict[str, list[bool]] = {}
    for entry, gt in sample:
        for kind, decoded in _mutations(gt, rng):
            ref = reference_multi_turn_check(entry, decoded, gt)
            ours = check_multi_turn_entry(entry, decoded, gt)
            assert ours == ref, (entry["id"], kind, decoded, ours, ref)
            kinds.setdefault(kind, []).append(ours["valid"])
    # the sample really exercises failures of each kind (and passes where bfcl passes)
    for kind in ("wrong_argument", "dropped_call", "turn_order", "empty_turn", "missing_turn"):
        assert not all(kinds[kind]), kind
    assert all(kinds["split_steps"])


def test_unparseable_call_strings_fail_without_execution(tmp_path):
    entry, gt = _all_mt()[0]
    decoded = [[turn] if turn else [] for turn in gt]
    marker = tmp_path / "pwned"
    decoded[0] = [[f"__import__('os').system('touch {marker}')"]]
    res = check_multi_turn_entry(entry, decoded, gt)
    assert res["valid"] is False and not marker.exists()
    assert check_multi_turn_entry(entry, decoded[:-1], gt)["error_type"] == "multi_turn:force_terminated"
