"""The eval harnesses' policies: the self-tests (ground-truth oracle, empty, math oracle) defined here, and
the public names of the others (``EndpointPolicy`` in ``endpoint``, ``TransformersPolicy`` in ``hf_policy``,
the ``Policy`` base class and ``SamplingConfig`` in ``policy_base``).
"""
from __future__ import annotations

from typing import Any

from dipo_tools.eval.endpoint import EndpointError, EndpointPolicy, tool_calls_to_hermes
from dipo_tools.eval.literals import java_literal, js_literal
from dipo_tools.eval.policy_base import (GenerateFn, Policy, SamplingConfig, _default_tokenizer, _eos_ids,
                                         _format_calls, template_fingerprint)
from dipo_tools.eval.prompts import PromptConfig, Request

__all__ = ["EmptyPolicy", "EndpointError", "EndpointPolicy", "GenerateFn", "MathOraclePolicy", "OraclePolicy",
           "Policy", "SamplingConfig", "TransformersPolicy", "oracle_single_calls", "template_fingerprint",
           "tool_calls_to_hermes"]


def oracle_single_calls(answer: list[dict], docs: list[dict] | None = None, language: str = "python") -> list[tuple[str, dict]]:
    """One concrete call per possible-answer dict: the first acceptable value of every parameter that has
    one (``""`` only means "may be omitted"). Java/JavaScript values are written as the language literals
    bfcl's type converters read (``docs`` gives the declared types)."""

    def pick(options: list) -> tuple[bool, Any]:
        for v in options:
            if v != "":
                return True, concrete(v)
        return False, None

    def concrete(v: Any) -> Any:
        # nested dict parameters carry per-key option lists; lists of dicts likewise
        if isinstance(v, dict):
            out = {}
            for k, opts in v.items():
                ok, val = pick(opts) if isinstance(opts, list) else (True, opts)
                if ok:
                    out[k] = val
            return out
        if isinstance(v, list):
            return [concrete(x) for x in v]
        return v

    types = {d["name"]: d.get("parameters", {}).get("properties", {}) for d in docs or []}
    calls = []
    for item in answer:
        (name, params), = item.items()
        args = {}
        props = types.get(name)
        for p, opts in params.items():
            ok, val = pick(opts)
            if not ok or (props is not None and p not in props):
                continue  # bfcl would reject a parameter its own doc does not declare
            spec = (props or {}).get(p, {})
            if language == "java":
                val = java_literal(val, spec.get("type", "any"), (spec.get("items") or {}).get("type"))
            elif language == "javascript":
                val = js_literal(val, spec.get("type", "any"))
            args[p] = val
        calls.append((name, args))
    return calls


def _placeholder(schema: dict) -> Any:
    t = schema.get("type")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    return {"integer": 1, "float": 1.0, "number": 1.0, "boolean": True, "array": [], "list": [],
            "tuple": [], "dict": {}, "object": {}}.get(t, "x")


class OraclePolicy(Policy):
    """Answers from bfcl's ground truth: a self-test of the whole pipeline (prompt → text → parser →
    checker), which must score 100% wherever it has an answer.

    Single turn: possible answers → calls; irrelevance → no call; live_relevance (no answer in the data) → a
    call of the first function with placeholder values for its required parameters (relevance only asks for
    *a* call). Multi-turn: replays each turn's ground-truth calls, then ends the turn with a text reply.
    """

    kind = "oracle"

    def __init__(self, prompt: PromptConfig, answers: dict[str, Any] | None = None, tokenizer=None):
        self.prompt = prompt
        self.answers = answers or {}
        self.tokenizer = tokenizer

    def add_answers(self, answers: dict[str, Any]) -> None:
        """``{entry id: {"ground_truth": possible answer, "function": docs without language hints,
        "language": python|java|javascript}}``."""
        self.answers.update(answers)

    def complete(self, request: Request) -> str:
        inverse = {v: k for k, v in request.name_map.items()}
        if "irrelevance" in request.category:
            return _format_calls([], self.prompt)
        if request.category == "live_relevance":
            d = request.docs[0]
            props = d.get("parameters", {}).get("properties", {})
            args = {p: _placeholder(props.get(p, {})) for p in d.get("parameters", {}).get("required", [])}
            return _format_calls([(inverse.get(d["name"], d["name"]), args)], self.prompt)
        ans = self.answers[request.id]
        calls = oracle_single_calls(ans["ground_truth"], ans.get("function"), ans.get("language", "python"))
        return _format_calls([(inverse.get(n, n), a) for n, a in calls], self.prompt)

    def make_generate(self, task: Any) -> GenerateFn:
        """Per-episode generator: a new user turn gets the turn's GT calls, the step after tool results gets a
        closing text. Relies only on the runner calling ``generate`` once per assistant step."""
        if self.tokenizer is None:
            self.tokenizer = _default_tokenizer()
        tok = self.tokenizer
        eos = _eos_ids(tok)[:1]
        turns = [list(t) for t in (task.ground_truth or {}).get("calls") or []]
        state = {"turn": -1, "last_had_calls": False}

        async def generate(prompt_ids: list[int], sampling_params: dict) -> tuple[list[int], list[float]]:
            if state["last_had_calls"]:
                calls = []          # tool results came back: close the turn
            else:
                state["turn"] += 1
                t = state["turn"]
                calls = [(c.name, dict(c.arguments)) for c in turns[t]] if t < len(turns) else []
            state["last_had_calls"] = bool(calls)
            ids = tok.encode(_format_calls(calls, self.prompt), add_special_tokens=False) + eos
            return ids, [0.0] * len(ids)

        return generate

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "note": "ground-truth replay (pipeline self-test)"}


class EmptyPolicy(Policy):
    """Never calls a tool: scores 0 everywhere except the irrelevance categories (a checker self-test)."""

    kind = "empty"

    def __init__(self, prompt: PromptConfig, tokenizer=None):
        self.prompt = prompt
        self.tokenizer = tokenizer

    def complete(self, request: Request) -> str:
        return _format_calls([], self.prompt)

    def make_generate(self, task: Any) -> GenerateFn:
        if self.tokenizer is None:
            self.tokenizer = _default_tokenizer()
        ids = self.tokenizer.encode(_format_calls([], self.prompt), add_special_tokens=False) + _eos_ids(self.tokenizer)[:1]

        async def generate(prompt_ids: list[int], sampling_params: dict) -> tuple[list[int], list[float]]:
            return list(ids), [0.0] * len(ids)

        return generate


class MathOraclePolicy(Policy):
    """Answers every math problem with its reference answer in ``\\boxed{}`` (a harness self-test)."""

    kind = "oracle"

    def __init__(self):
        self.answers: dict[str, str] = {}

    def add_answers(self, answers: dict[str, str]) -> None:
        self.answers.update(answers)

    def complete(self, request: Request) -> str:
        return f"The answer is \\boxed{{{self.answers[request.id]}}}."


def __getattr__(name: str) -> Any:
    """``TransformersPolicy`` on first use (PEP 562): its module imports torch and transformers, which take
    seconds and which the endpoint and self-test policies never need."""
    if name == "TransformersPolicy":
        from dipo_tools.eval.hf_policy import TransformersPolicy

        return TransformersPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
