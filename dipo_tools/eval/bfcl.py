"""BFCL V3 evaluation: generate with a policy, score with bfcl-eval's own checkers, report the V3 overall.

Usage::

    python -m dipo_tools.eval.bfcl --policy endpoint --base-url http://127.0.0.1:8000/v1 --model qwen \\
        --tokenizer /path/to/checkpoint --categories all --output-dir runs/bfcl
    python -m dipo_tools.eval.bfcl --policy oracle --categories multi_turn --output-dir /tmp/selftest

Single-turn categories are decoded with ``tool_envs.parsing`` and checked by bfcl-eval's ``ast_checker`` (and
bfcl's relevance/irrelevance rule). Multi-turn episodes are run by the shared episode runner
(``tool_envs.runner.run_episode``) on ``tool_envs`` environments (no ``eval`` of model output anywhere) and
checked by ``reward.multi_turn.check_turns``, which reproduces bfcl's ``multi_turn_checker`` verdicts.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import copy
import json
import pathlib
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tool_envs import env_for_task
from tool_envs.chat import ChatRenderer
from tool_envs.parsing import format_tool_calls
from tool_envs.runner import RunnerConfig, run_episode
from tqdm.auto import tqdm

from dipo_tools.eval.bfcl_data import CATEGORIES, Category, category_size, load_category, provenance, resolve_categories
# the scoring functions, importable from here as before they moved (check_multi_turn_entry is public API)
from dipo_tools.eval.bfcl_scoring import (CHECKER_MODEL_KEY, _check_turns, bfcl_task, check_multi_turn_entry,
                                          decoded_to_calls, score_single_turn, v3_overall)
from dipo_tools.eval.dataclass_args import add_dataclass_args, dataclass_from_args
from dipo_tools.eval.policies import EmptyPolicy, EndpointPolicy, OraclePolicy, SamplingConfig
from dipo_tools.eval.policy_base import _default_tokenizer
from dipo_tools.eval.prompts import PROMPT_MODES, PromptConfig, build_request, toolrl_system_prompt
from dipo_tools.eval.report import write_bfcl_report

__all__ = ["BFCLEvalConfig", "CHECKER_MODEL_KEY", "check_multi_turn_entry", "decoded_to_calls", "evaluate_bfcl",
           "score_single_turn", "v3_overall"]


# ----------------------------------------------------------------------------------------------------------
# The evaluation run


@dataclass
class BFCLEvalConfig:
    """One BFCL evaluation run.

    Attributes:
        categories: V3 or installed names, or groups (``all``, ``non_live``, ``live``, ``multi_turn``,
            ``single_turn``, ``ast``). Anything short of ``all`` gives a partial overall (missing = 0, as bfcl).
        output_dir: where ``results.jsonl`` (one row per entry, the resume file), ``report.json``,
            ``report.md`` and ``report.png`` go.
        limit: evaluate only the first N entries of each category (smoke runs; the scores are then not
            comparable to the leaderboard).
        ids: evaluate only these entry ids.
        resume: skip entries already in ``results.jsonl`` (a crashed or interrupted run continues).
        prompt: prompt mode, system prompt, name sanitising (see PromptConfig).
        max_assistant_steps: per user turn in multi-turn (bfcl forces termination after 20 steps).
        max_response_tokens: total generated+tool tokens per multi-turn episode; long_context needs a lot.
        max_step_tokens: cap on one assistant step in multi-turn (None = what is left of
            ``max_response_tokens``, as bfcl which only bounds by the context). Single-turn generation length
            is the policy's ``max_tokens``.
        concurrency: multi-turn episodes run at once (an endpoint profits, a local model does not).
        progress: tqdm bars.
    """

    categories: list[str] | str = "all"
    output_dir: str = "bfcl_eval_out"
    limit: int | None = None
    ids: list[str] | None = None
    resume: bool = True
    prompt: PromptConfig = field(default_factory=PromptConfig)
    max_assistant_steps: int = 20
    max_response_tokens: int = 32768
    max_step_tokens: int | None = None
    concurrency: int = 4
    progress: bool = True


def _read_results(path: pathlib.Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                done[row["id"]] = row
            except (json.JSONDecodeError, KeyError):
                # a torn last line from a killed run: ignore it, that entry is redone
                print(f"warning: {path}:{i}: unreadable result row skipped", file=sys.stderr)
    return done


def _select(entries: list[dict], answers: list[dict] | None, cfg: BFCLEvalConfig):
    pairs = list(zip(entries, answers if answers is not None else [None] * len(entries)))
    if cfg.ids:
        wanted = set(cfg.ids)
        pairs = [p for p in pairs if p[0]["id"] in wanted]
    if cfg.limit is not None:
        pairs = pairs[: cfg.limit]
    return pairs


def _tqdm(it, **kw):
    return tqdm(it, **kw)


def _single_turn_rows(policy, cat: Category, pairs, check_entries: dict[str, dict], cfg: BFCLEvalConfig, sink) -> None:
    if hasattr(policy, "add_answers"):  # the oracle answers from the ground truth
        policy.add_answers({e["id"]: {"ground_truth": a["ground_truth"], "language": cat.language,
                                      "function": check_entries[e["id"]]["function"]}
                            for e, a in pairs if a is not None})

    def work(pair):
        entry, answer = copy.deepcopy(pair)  # the loaded data is shared; checkers get their own copy
        req = build_request(entry, cat.v3, cfg.prompt)
        try:
            raw = policy.complete(req)
            gen_error = None
        except Exception as e:  # one failed request is that entry's failure; the run goes on
            raw, gen_error = "", f"{type(e).__name__}: {e}"
        res = score_single_turn(cat, copy.deepcopy(check_entries[entry["id"]]), answer["ground_truth"] if answer else None,
                                raw, cfg.prompt, req.name_map)
        if gen_error:
            res.update(valid=False, error_type="inference_error", error=gen_error)
        return {"id": entry["id"], "category": cat.v3, "result": raw, **res}

    workers = max(1, int(getattr(policy, "concurrency", 1)))
    with cf.ThreadPoolExecutor(workers) as pool:
        for row in _tqdm(pool.map(work, pairs), total=len(pairs), desc=cat.v3, disable=not cfg.progress):
            sink(row)


async def _episode_row(policy, cat: Category, entry: dict, gt: list[list[str]], cfg: BFCLEvalConfig,
                       renderer=None) -> dict:
    task = bfcl_task(entry, gt)
    system = cfg.prompt.system_prompt
    toolrl = cfg.prompt.mode == "toolrl"
    if toolrl:  # ToolRL lists the tools in its system prompt, not through the chat template
        system = toolrl_system_prompt(entry.get("function", []))
    rc = RunnerConfig(tool_format=cfg.prompt.tool_format, system_prompt=system, pass_tools_to_template=not toolrl,
                      max_steps_per_turn=cfg.max_assistant_steps,
                      max_assistant_turns=cfg.max_assistant_steps * max(1, len(task.turns)),
                      max_response_tokens=cfg.max_response_tokens, max_new_tokens_per_step=cfg.max_step_tokens)
    try:
        traj = await run_episode(tokenizer=policy.tokenizer, env=env_for_task(task), task=task,
                                 generate=policy.make_generate(task), sampling_params={}, config=rc,
                                 renderer=renderer)
    except Exception as e:  # noqa: BLE001 — a crashed episode fails its entry, never the run
        return {"id": entry["id"], "category": cat.v3, "valid": False, "error_type": "multi_turn:inference_error",
                "error": f"{type(e).__name__}: {e}", "result": None, "decoded": None}
    # bfcl drops steps that decode to no call; the executor hands backends copies, so the traced calls
    # still hold exactly what the model wrote
    calls = [[list(s.calls) for s in turn if s.calls] for turn in traj.turns]
    if len(calls) != len(gt):
        res = {"valid": False, "error_type": "multi_turn:force_terminated"}
    else:
        res = _check_turns(task, traj)  # scores the recorded episode: the model's calls are not run again
    return {
        "id": entry["id"], "category": cat.v3, "valid": bool(res["valid"]),
        "error_type": None if res["valid"] else res.get("error_type"),
        "result": [[s.text for s in turn] for turn in traj.turns],
        "decoded": [[format_tool_calls(step, "python") for step in turn] for turn in calls],
        "stop_reason": traj.stop_reason, "num_tool_calls": traj.num_tool_calls,
    }


def policy_tokenizer(policy):
    """The tokenizer whose chat template renders multi-turn episodes (self-test policies build the offline
    tiny tokenizer when none was given)."""
    if getattr(policy, "tokenizer", None) is None:
        if policy.kind in ("oracle", "empty"):
            policy.tokenizer = _default_tokenizer()
        else:
            raise ValueError(f"the {policy.kind} policy has no tokenizer; pass --tokenizer PATH for multi-turn")
    return policy.tokenizer


def _multi_turn_rows(policy, cat: Category, pairs, cfg: BFCLEvalConfig, sink) -> None:
    tokenizer = policy_tokenizer(policy)
    renderer = ChatRenderer(tokenizer, {}, None)  # probing the template once, not per episode

    async def run_all():
        sem = asyncio.Semaphore(max(1, cfg.concurrency))

        async def one(entry, answer):
            async with sem:
                entry, answer = copy.deepcopy((entry, answer))
                return await _episode_row(policy, cat, entry, answer["ground_truth"], cfg, renderer)

        tasks = [asyncio.ensure_future(one(e, a)) for e, a in pairs]
        for fut in _tqdm(asyncio.as_completed(tasks), total=len(tasks), desc=cat.v3, disable=not cfg.progress):
            sink(await fut)

    asyncio.run(run_all())


def evaluate_bfcl(policy, cfg: BFCLEvalConfig) -> dict[str, Any]:
    """Run (or resume) an evaluation and write the reports; returns the report dict."""
    cats = resolve_categories(cfg.categories)
    out = pathlib.Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    if any(c.kind == "multi_turn" for c in cats):
        policy_tokenizer(policy)  # so the report records the template that renders the episodes
    meta = {"prompt": asdict(cfg.prompt), "policy": policy.describe(), **provenance()}
    meta_path = out / "run_meta.json"
    if cfg.resume and meta_path.exists() and results_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("prompt") != meta["prompt"] or old.get("data_revision") != meta["data_revision"]:
            raise ValueError(f"{out}: existing results were made with a different prompt/data "
                             f"({old.get('prompt')}, data {old.get('data_revision')}); use a new --output-dir "
                             "or --no-resume")
    if not cfg.resume and results_path.exists():
        results_path.unlink()
    meta_path.write_text(json.dumps(meta, indent=2))
    done = _read_results(results_path) if cfg.resume else {}

    started = time.time()
    with results_path.open("a") as fh:
        def sink(row: dict) -> None:
            fh.write(json.dumps(row, default=str) + "\n")
            fh.flush()
            done[row["id"]] = row

        for cat in cats:
            entries, answers = load_category(cat, hints=True)
            pairs = [p for p in _select(entries, answers, cfg) if p[0]["id"] not in done]
            if not pairs:
                continue
            if cat.kind == "multi_turn":
                _multi_turn_rows(policy, cat, pairs, cfg, sink)
            else:
                plain, _ = load_category(cat, hints=False)
                check_entries = {e["id"]: e for e in plain}
                _single_turn_rows(policy, cat, pairs, check_entries, cfg, sink)

    scores: dict[str, dict[str, Any]] = {}
    for cat in cats:
        entries, answers = load_category(cat, hints=False)
        ids = [e["id"] for e, _ in _select(entries, answers, cfg)]
        rows = [done[i] for i in ids if i in done]
        correct = sum(1 for r in rows if r.get("valid"))
        errors: dict[str, int] = {}
        for r in rows:
            if not r.get("valid"):
                errors[str(r.get("error_type"))] = errors.get(str(r.get("error_type")), 0) + 1
        scores[cat.v3] = {"correct": correct, "total": len(rows), "accuracy": correct / len(rows) if rows else 0.0,
                          "group": cat.group, "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1]))}
    full_counts = {c.v3: category_size(c) for c in CATEGORIES if c.group == "live"}
    report = {
        "benchmark": "BFCL V3",
        **meta,
        "categories": scores,
        "summary": v3_overall(scores, full_counts),
        "partial": cfg.limit is not None or bool(cfg.ids),
        "elapsed_s": round(time.time() - started, 2),
    }
    write_bfcl_report(report, out)
    return report


# ----------------------------------------------------------------------------------------------------------
# Command line


def build_policy(args: argparse.Namespace, prompt: PromptConfig):
    tok = None
    if getattr(args, "tokenizer", None):
        # transformers (and torch) here, not at the top: they take seconds to import and `--help`, the
        # endpoint's chat api and the self-tests need neither
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.tokenizer)
    sampling = dataclass_from_args(SamplingConfig, args)
    if args.policy == "oracle":
        return OraclePolicy(prompt, tokenizer=tok)
    if args.policy == "empty":
        return EmptyPolicy(prompt, tokenizer=tok)
    if args.policy == "endpoint":
        if not args.base_url or not args.model:
            raise SystemExit("--policy endpoint needs --base-url (e.g. http://127.0.0.1:8000/v1) and --model")
        return EndpointPolicy(args.base_url, args.model, prompt=prompt, api=args.api, tokenizer=tok,
                              api_key=args.api_key, sampling=sampling,
                              concurrency=getattr(args, "concurrency", BFCLEvalConfig.concurrency))
    if args.policy == "transformers":
        if not args.model:
            raise SystemExit("--policy transformers needs --model PATH (a local checkpoint directory)")
        from dipo_tools.eval.hf_policy import TransformersPolicy  # torch + transformers: see above

        return TransformersPolicy(args.model, prompt=prompt, tokenizer=tok, sampling=sampling)
    raise SystemExit(f"unknown --policy {args.policy!r}")


def add_policy_args(p: argparse.ArgumentParser) -> None:
    """Which policy answers, how it decodes (``SamplingConfig``) and how it is prompted (``PromptConfig``)."""
    p.add_argument("--policy", choices=["endpoint", "transformers", "oracle", "empty"], default="endpoint")
    p.add_argument("--base-url", help="OpenAI-compatible base url, e.g. http://127.0.0.1:8000/v1 (endpoint)")
    p.add_argument("--model", help="served model name (endpoint) or checkpoint path (transformers)")
    p.add_argument("--api", choices=["chat", "completions"], default="chat",
                   help="endpoint: server-side template+tool parser (chat) or our rendering (completions)")
    p.add_argument("--api-key", default="EMPTY")
    p.add_argument("--tokenizer", help="tokenizer/chat-template path (multi-turn and --api completions)")
    add_dataclass_args(p, SamplingConfig, rename={"max_tokens": "max-new-tokens"})
    add_dataclass_args(p, PromptConfig, rename={"mode": "prompt-mode"}, choices={"mode": PROMPT_MODES})


def add_bfcl_args(p: argparse.ArgumentParser) -> None:
    add_policy_args(p)
    add_dataclass_args(p, BFCLEvalConfig, exclude=("prompt",), required=("output_dir",))


def run_from_args(args: argparse.Namespace) -> int:
    prompt = dataclass_from_args(PromptConfig, args)
    cfg = dataclass_from_args(BFCLEvalConfig, args, prompt=prompt)
    policy = build_policy(args, prompt)
    report = evaluate_bfcl(policy, cfg)
    s = report["summary"]
    print(f"BFCL V3 overall {100 * s['overall']:.2f}  non-live {100 * s['non_live']:.2f}  live "
          f"{100 * s['live']:.2f}  multi-turn {100 * s['multi_turn']:.2f}"
          + ("" if s["complete"] else "  (partial: missing categories count as 0)"))
    print(f"report: {pathlib.Path(cfg.output_dir) / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dipo_tools.eval.bfcl", description=__doc__.split("\n\n")[0])
    add_bfcl_args(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
