"""The endpoint policy end to end against a real HTTP server on 127.0.0.1 with scripted completions, and the
official bfcl generate+evaluate path against the same server."""
from __future__ import annotations

import json

import pytest

from dipo_tools.eval.bfcl import BFCLEvalConfig, evaluate_bfcl
from dipo_tools.eval.bfcl_data import load_category
from dipo_tools.eval.policies import EndpointPolicy, SamplingConfig, oracle_single_calls
from dipo_tools.eval.prompts import PromptConfig, sanitize_name

SINGLE = ["simple", "multiple", "parallel", "irrelevance"]


def _gt_by_question(categories, limit):
    """first user message -> (category, ground truth) for the scripted server."""
    out = {}
    for c in categories:
        entries, answers = load_category(c)
        for i, e in enumerate(entries[:limit]):
            user = next(m["content"] for m in e["question"][0] if m["role"] == "user")
            out[user] = (c, answers[i]["ground_truth"] if answers else None, e)
    return out


def _tool_calls(calls, tools):
    shown = {t["function"]["name"] for t in tools or []}
    return [{"id": f"call_{i}", "type": "function",
             "function": {"name": n if n in shown else sanitize_name(n), "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(calls)]


def make_chat_script(table, corrupt=False):
    """A chat-completions script that replays ground truth: single-turn answers, and multi-turn turns by
    counting user messages (a tool message last means the turn's calls ran: close the turn)."""

    def chat(body):
        msgs = body["messages"]
        users = [m for m in msgs if m["role"] == "user"]
        category, gt, entry = table[users[0]["content"]]
        if category.startswith("multi_turn"):
            if msgs[-1]["role"] == "tool":
                return {"role": "assistant", "content": "Done."}
            from tool_envs.bfcl import parse_gt_turn

            turn = gt[len(users) - 1]
            calls = [(c.name, dict(c.arguments)) for c in parse_gt_turn(turn, entry["involved_classes"])]
        elif gt is None:
            return {"role": "assistant", "content": "I cannot help with that."}
        else:
            calls = oracle_single_calls(gt)
        if not calls:
            return {"role": "assistant", "content": "Nothing to do."}
        if corrupt:
            calls = [(n, {k: (v + 1 if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                          for k, v in a.items()}) for n, a in calls]
        return {"role": "assistant", "content": None, "tool_calls": _tool_calls(calls, body.get("tools"))}

    return chat


def test_endpoint_chat_api_end_to_end(scripted_server, tmp_path):
    table = _gt_by_question(SINGLE, 3)
    scripted_server.chat = make_chat_script(table)
    prompt = PromptConfig("qwen", sanitize_names=True)
    pol = EndpointPolicy(scripted_server.base_url, "stub-model", prompt=prompt, concurrency=2)
    cfg = BFCLEvalConfig(categories=",".join(SINGLE), output_dir=str(tmp_path / "ok"), limit=3, prompt=prompt,
                         progress=False)
    rep = evaluate_bfcl(pol, cfg)
    assert {k: v["correct"] for k, v in rep["categories"].items()} == {c: 3 for c in SINGLE}
    path, body = scripted_server.requests[0]
    assert path == "/v1/chat/completions" and body["model"] == "stub-model" and body["temperature"] == 0.0
    assert all("." not in t["function"]["name"] for _, b in scripted_server.requests for t in b.get("tools", []))
    assert rep["policy"]["base_url"] == scripted_server.base_url

    scripted_server.chat = make_chat_script(table, corrupt=True)
    cfg.output_dir = str(tmp_path / "bad")
    rep = evaluate_bfcl(pol, cfg)
    assert rep["categories"]["simple"]["correct"] == 0 and rep["categories"]["irrelevance"]["correct"] == 3


def test_endpoint_errors_fail_entries_not_the_run(scripted_server, tmp_path):
    def boom(body):
        raise RuntimeError("server-side failure")

    scripted_server.chat = boom
    pol = EndpointPolicy(scripted_server.base_url, "m", prompt=PromptConfig())
    rep = evaluate_bfcl(pol, BFCLEvalConfig(categories="simple", output_dir=str(tmp_path), limit=2, progress=False))
    assert rep["categories"]["simple"]["errors"] == {"inference_error": 2}
    with pytest.raises(ValueError, match="--tokenizer"):
        EndpointPolicy(scripted_server.base_url, "m", prompt=PromptConfig(), api="completions")


def test_endpoint_completions_api_and_multi_turn_token_ids(scripted_server, tmp_path, tiny_tokenizer):
    tok = tiny_tokenizer
    single = _gt_by_question(["simple"], 2)
    mt = _gt_by_question(["multi_turn_base"], 2)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    from tool_envs.bfcl import parse_gt_turn
    from tool_envs.parsing import format_tool_calls

    def complete(body):
        prompt = body["prompt"]
        if isinstance(prompt, str):  # single-turn: our own rendering of the chat template, text back
            user = prompt.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
            _, gt, _ = single[user]
            from tool_envs.types import ToolCall

            return format_tool_calls([ToolCall(n, a) for n, a in oracle_single_calls(gt)], "hermes"), None
        text = tok.decode(prompt)  # multi-turn: token ids in, token ids out
        blocks = text.split("<|im_start|>user\n")[1:]
        first = blocks[0].split("<|im_end|>", 1)[0]
        _, gt, entry = mt[first]
        if blocks[-1].startswith("<tool_response>"):
            out = "Done."
        else:
            n_user = sum(1 for b in blocks if not b.startswith("<tool_response>"))
            out = format_tool_calls(parse_gt_turn(gt[n_user - 1], entry["involved_classes"]), "hermes") or "Done."
        return out, tok.encode(out, add_special_tokens=False) + [eos]

    scripted_server.complete = complete
    pol = EndpointPolicy(scripted_server.base_url, "m", prompt=PromptConfig(), api="completions", tokenizer=tok,
                         sampling=SamplingConfig(temperature=0.0, max_tokens=64))
    rep = evaluate_bfcl(pol, BFCLEvalConfig(categories="simple,multi_turn_base", output_dir=str(tmp_path), limit=2,
                                            progress=False, concurrency=1))
    assert rep["categories"]["simple"]["correct"] == 2
    assert rep["categories"]["multi_turn_base"]["correct"] == 2
    token_reqs = [b for p, b in scripted_server.requests if isinstance(b["prompt"], list)]
    assert token_reqs and all(b["return_tokens_as_token_ids"] for b in token_reqs)
    assert rep["policy"]["chat_template_sha256"]


def test_official_bfcl_generate_and_evaluate_against_the_same_server(scripted_server, tmp_path):
    from dipo_tools.eval.official import run_official

    ids = ["simple_python_0", "simple_python_1", "multi_turn_base_0"]
    table = _gt_by_question(["simple", "multi_turn_base"], 2)
    scripted_server.chat = make_chat_script(table)
    rep = run_official(scripted_server.base_url, "stub-model", "simple,multi_turn_base", tmp_path / "bfcl", ids=ids,
                       timeout=300)
    assert rep["categories"]["simple"]["accuracy"] == 1.0 and rep["categories"]["simple"]["total"] == 2
    assert rep["categories"]["multi_turn_base"]["accuracy"] == 1.0
    assert (tmp_path / "bfcl" / "result").is_dir()
    # our harness agrees on the same entries and server
    pol = EndpointPolicy(scripted_server.base_url, "stub-model", prompt=PromptConfig("qwen", sanitize_names=True))
    ours = evaluate_bfcl(pol, BFCLEvalConfig(categories="simple", ids=ids, output_dir=str(tmp_path / "ours"),
                                             prompt=pol.prompt, progress=False))
    assert ours["categories"]["simple"]["accuracy"] == rep["categories"]["simple"]["accuracy"]
