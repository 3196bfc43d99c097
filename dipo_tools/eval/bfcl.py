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
from typing import Any, Iterable

from dipo_tools.eval.bfcl_data import (
    BY_NAME,
    CATEGORIES,
    Category,
    category_size,
    ensure_bfcl_root,
    load_category,
    provenance,
    resolve_categories,
)
from dipo_tools.eval.prompts import DecodeError, PromptConfig, build_request, decode_calls

#: Registry key under which this harness calls bfcl's ``ast_checker``. Names are mapped back to bfcl's own
#: (dotted) names before checking, so ``underscore_to_dot`` must be off. No ``_`` in it: bfcl maps ``_`` → ``/``.
CHECKER_MODEL_KEY = "dipo-tools-eval"


# ----------------------------------------------------------------------------------------------------------
# Single-turn scoring (bfcl-eval's ast_checker and relevance rule)


def _ast_checker():
    ensure_bfcl_root()
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
    from tool_envs.bfcl import parse_gt_turn
    from tool_envs.parsing import ToolCallParseError
    from tool_envs.types import ToolCall

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
    from tool_envs.bfcl import bfcl_entry_to_task

    return bfcl_entry_to_task(entry, {"id": entry["id"], "ground_truth": ground_truth})


def _check_turns(task, calls) -> dict:
    """The one multi-turn check: ``reward.multi_turn.check_turns`` (tool_envs executor + bfcl's own
    ``state_checker``/``response_checker``); verdict only, it stops at the first failing turn."""
    from reward.multi_turn import check_turns

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
    from tqdm.auto import tqdm

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
    from tool_envs import env_for_task
    from tool_envs.parsing import format_tool_calls
    from tool_envs.runner import RunnerConfig, run_episode

    task = bfcl_task(entry, gt)
    system = cfg.prompt.system_prompt
    toolrl = cfg.prompt.mode == "toolrl"
    if toolrl:  # ToolRL lists the tools in its system prompt, not through the chat template
        from dipo_tools.eval.prompts import toolrl_system_prompt

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
            from dipo_tools.models.tiny import build_tiny_tokenizer

            policy.tokenizer = build_tiny_tokenizer()
        else:
            raise ValueError(f"the {policy.kind} policy has no tokenizer; pass --tokenizer PATH for multi-turn")
    return policy.tokenizer


def _multi_turn_rows(policy, cat: Category, pairs, cfg: BFCLEvalConfig, sink) -> None:
    from tool_envs.chat import ChatRenderer

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
    from dipo_tools.eval.report import write_bfcl_report

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
    from dipo_tools.eval.policies import EmptyPolicy, EndpointPolicy, OraclePolicy, SamplingConfig, TransformersPolicy

    tok = None
    if getattr(args, "tokenizer", None):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.tokenizer)
    sampling = SamplingConfig(temperature=args.temperature, max_tokens=args.max_new_tokens, seed=args.seed)
    if args.policy == "oracle":
        return OraclePolicy(prompt, tokenizer=tok)
    if args.policy == "empty":
        return EmptyPolicy(prompt, tokenizer=tok)
    if args.policy == "endpoint":
        if not args.base_url or not args.model:
            raise SystemExit("--policy endpoint needs --base-url (e.g. http://127.0.0.1:8000/v1) and --model")
        return EndpointPolicy(args.base_url, args.model, prompt=prompt, api=args.api, tokenizer=tok,
                              api_key=args.api_key, sampling=sampling, concurrency=args.concurrency)
    if args.policy == "transformers":
        if not args.model:
            raise SystemExit("--policy transformers needs --model PATH (a local checkpoint directory)")
        return TransformersPolicy(args.model, prompt=prompt, tokenizer=tok, sampling=sampling)
    raise SystemExit(f"unknown --policy {args.policy!r}")


def add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", choices=["endpoint", "transformers", "oracle", "empty"], default="endpoint")
    p.add_argument("--base-url", help="OpenAI-compatible base url, e.g. http://127.0.0.1:8000/v1 (endpoint)")
    p.add_argument("--model", help="served model name (endpoint) or checkpoint path (transformers)")
    p.add_argument("--api", choices=["chat", "completions"], default="chat",
                   help="endpoint: server-side template+tool parser (chat) or our rendering (completions)")
    p.add_argument("--api-key", default="EMPTY")
    p.add_argument("--tokenizer", help="tokenizer/chat-template path (multi-turn and --api completions)")
    p.add_argument("--prompt-mode", choices=["qwen", "toolrl"], default="qwen")
    p.add_argument("--system-prompt", default=None, help="extra system prompt (qwen mode)")
    p.add_argument("--sanitize-names", action="store_true", help="show dotted tool names with '_' (strict APIs)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming results.jsonl")
    p.add_argument("--no-progress", action="store_true")


def add_bfcl_args(p: argparse.ArgumentParser) -> None:
    add_policy_args(p)
    p.add_argument("--categories", default="all", help="comma list of categories or groups (all, non_live, live, "
                                                       "multi_turn, single_turn, ast)")
    p.add_argument("--limit", type=int, default=None, help="first N entries per category (smoke runs)")
    p.add_argument("--ids", default=None, help="comma list of entry ids")
    p.add_argument("--max-assistant-steps", type=int, default=20)
    p.add_argument("--max-response-tokens", type=int, default=32768, help="multi-turn token budget per episode")
    p.add_argument("--max-step-tokens", type=int, default=None, help="multi-turn cap per assistant step")


def run_from_args(args: argparse.Namespace) -> int:
    prompt = PromptConfig(mode=args.prompt_mode, system_prompt=args.system_prompt, sanitize_names=args.sanitize_names)
    cfg = BFCLEvalConfig(categories=args.categories, output_dir=args.output_dir, limit=args.limit,
                         ids=args.ids.split(",") if args.ids else None, resume=not args.no_resume, prompt=prompt,
                         max_assistant_steps=args.max_assistant_steps, max_response_tokens=args.max_response_tokens,
                         max_step_tokens=args.max_step_tokens, concurrency=args.concurrency,
                         progress=not args.no_progress)
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
