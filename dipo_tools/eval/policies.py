"""Policies evaluated by the harnesses: an OpenAI-compatible endpoint, an in-process transformers model, and
two self-test policies (ground-truth oracle, empty).

Every policy answers a single-turn :class:`~dipo_tools.eval.prompts.Request` with the assistant's raw text
(``complete``), and, for multi-turn episodes run by ``tool_envs.runner.run_episode``, provides a token-level
``GenerateFn`` (``make_generate``) plus the tokenizer whose chat template renders the conversation.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from dipo_tools.eval.prompts import PromptConfig, Request

GenerateFn = Callable[[list[int], dict], Awaitable[tuple[list[int], list[float]]]]


def _format_calls(calls: list[tuple[str, dict]], cfg: PromptConfig) -> str:
    """Assistant text carrying ``calls`` in the mode's wire format (written by ``tool_envs.parsing``)."""
    from tool_envs.parsing import format_tool_calls
    from tool_envs.types import ToolCall

    body = format_tool_calls([ToolCall(n, a) for n, a in calls], cfg.tool_format) if calls else ""
    if cfg.mode == "toolrl":
        think = "<think> I should use the appropriate tool. </think>\n"
        return think + body if calls else think + "<response> Done. </response>"
    return body if calls else "Done."


def template_fingerprint(tokenizer) -> dict[str, Any]:
    tpl = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(tpl, dict):  # some tokenizers carry several named templates
        tpl = tpl.get("default") or json.dumps(tpl, sort_keys=True)
    return {
        "chat_template_sha256": hashlib.sha256(tpl.encode()).hexdigest()[:16] if tpl else None,
        "tokenizer": getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
    }


class Policy:
    """Base class. Subclasses set ``kind`` and implement ``complete``; multi-turn needs ``tokenizer`` and
    ``make_generate``."""

    kind = "base"
    tokenizer: Any = None
    #: how many requests may run at once (endpoints profit from concurrency, local models do not)
    concurrency: int = 1

    def complete(self, request: Request) -> str:
        raise NotImplementedError

    def make_generate(self, task: Any) -> GenerateFn:
        raise NotImplementedError(f"the {self.kind} policy cannot run multi-turn episodes")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **template_fingerprint(self.tokenizer)}

    def close(self) -> None:
        pass


def _eos_ids(tokenizer) -> list[int]:
    ids = []
    for tok in ("<|im_end|>",):
        i = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(i, int) and i != getattr(tokenizer, "unk_token_id", None) and i >= 0:
            ids.append(i)
    if not ids and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def _default_tokenizer():
    from dipo_tools.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


# ----------------------------------------------------------------------------------------------------------
# Self-test policies


def _java_literal(v: Any, typ: str, nested: str | None = None) -> str:
    if isinstance(v, str):
        return v if typ != "String" or nested is None else f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if typ == "long":
        return f"{v}L"
    if typ == "float":
        return f"{v}f"
    if isinstance(v, list):
        # bfcl's converters: ArrayList<String> and untyped collections read quoted strings, typed Arrays read
        # bare elements through the element type's converter
        def item(x: Any) -> str:
            if isinstance(x, str):
                quoted = (typ == "ArrayList" and nested in ("String", "char")) or nested is None
                return f'"{x}"' if quoted else x
            return _java_literal(x, nested or "any")
        items = [item(x) for x in v]
        if typ == "Array":
            return f"new {nested or 'Object'}[]{{{', '.join(items)}}}"
        return f"new ArrayList<>(Arrays.asList({', '.join(items)}))" if items else "new ArrayList<>()"
    if isinstance(v, dict):
        puts = " ".join(f'put("{k}", {chr(34) + x + chr(34) if isinstance(x, str) else _java_literal(x, "any")});'
                        for k, x in v.items())
        return f"new HashMap<String, String>() {{{{ {puts} }}}}"
    return str(v)


def _js_literal(v: Any, typ: str, top: bool = True) -> str:
    if isinstance(v, str):
        return v if top else f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if typ == "Bigint":
        return f"{v}n"
    if isinstance(v, list):
        return "[" + ", ".join(_js_literal(x, "any", False) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_js_literal(x, 'any', False)}" for k, x in v.items()) + "}"
    return str(v)


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
                val = _java_literal(val, spec.get("type", "any"), (spec.get("items") or {}).get("type"))
            elif language == "javascript":
                val = _js_literal(val, spec.get("type", "any"))
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


# ----------------------------------------------------------------------------------------------------------
# OpenAI-compatible endpoint (what `vllm serve <checkpoint>` exposes)


@dataclass
class SamplingConfig:
    """Decoding settings shared by the endpoint and transformers policies.

    Attributes:
        temperature: 0 = greedy (bfcl's leaderboard uses 0.001; greedy is reproducible, sampling is needed
            for mean@k / maj@k in the math harness).
        top_p: nucleus sampling mass (1.0 = off).
        max_tokens: new tokens per assistant step; too small truncates calls, too large wastes time on
            runaway generations.
        seed: sampling seed (endpoints that support it; local sampling).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = 0

    def as_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}


class EndpointError(RuntimeError):
    pass


def _post(url: str, payload: dict, api_key: str | None, timeout: float) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {api_key}"} if api_key else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")[:500]
        raise EndpointError(f"{url} answered HTTP {e.code}: {body}") from e
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise EndpointError(f"cannot reach {url} ({e}); is the server running? (option --base-url)") from e


def tool_calls_to_hermes(message: dict) -> str:
    """A chat-completions message (content + ``tool_calls``) → hermes text, so one parser decodes both APIs."""
    parts = [message.get("content") or ""]
    for tc in message.get("tool_calls") or []:
        fn = tc.get("function", {})
        args = fn.get("arguments", "{}")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except json.JSONDecodeError:
            pass  # keep the raw string; the parser reports it as a malformed call
        parts.append("<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
                     + "\n</tool_call>")
    return "\n".join(p for p in parts if p)


class EndpointPolicy(Policy):
    """An OpenAI-compatible server.

    ``api="chat"``: ``/v1/chat/completions`` with ``tools=`` (the server's template and tool parser, e.g.
    ``vllm serve --enable-auto-tool-choice --tool-call-parser hermes``); tool calls come back structured and are
    turned into hermes text. ``api="completions"``: ``/v1/completions`` with our own rendering of the chat
    template (needs ``tokenizer``), the server only continues text — what bfcl's OSS handlers do. Multi-turn
    always uses ``/v1/completions`` with token ids (vLLM accepts a token-id prompt and, with
    ``return_tokens_as_token_ids``, returns ids), so the runner stays token-in/token-out.
    """

    kind = "endpoint"

    def __init__(self, base_url: str, model: str, *, prompt: PromptConfig, api: str = "chat",
                 tokenizer=None, api_key: str | None = "EMPTY", sampling: SamplingConfig | None = None,
                 timeout: float = 300.0, concurrency: int = 8):
        if api not in ("chat", "completions"):
            raise ValueError(f"endpoint api {api!r} must be 'chat' or 'completions' (option --api)")
        if api == "completions" and tokenizer is None:
            raise ValueError("the completions api renders the chat template locally: pass --tokenizer PATH")
        self.base_url = base_url.rstrip("/")
        self.model, self.api, self.prompt, self.tokenizer = model, api, prompt, tokenizer
        self.api_key, self.timeout, self.concurrency = api_key, timeout, concurrency
        self.sampling = sampling or SamplingConfig()

    def _sampling_payload(self) -> dict:
        s = self.sampling
        p = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}
        if s.seed is not None:
            p["seed"] = s.seed
        return p

    def complete_sample(self, request: Request, j: int) -> str:
        """Sample ``j`` of a request (math k-sampling): the seed moves with ``j`` so samples differ."""
        return self.complete(request, seed_offset=j)

    def complete(self, request: Request, seed_offset: int = 0) -> str:
        sampling = self._sampling_payload()
        if "seed" in sampling:
            sampling["seed"] += seed_offset
        if self.api == "chat":
            payload = {"model": self.model, "messages": request.messages, **sampling}
            if request.tools:
                payload["tools"] = request.tools
            out = _post(f"{self.base_url}/chat/completions", payload, self.api_key, self.timeout)
            try:
                return tool_calls_to_hermes(out["choices"][0]["message"])
            except (KeyError, IndexError, TypeError) as e:
                raise EndpointError(f"unexpected chat completion payload: {str(out)[:300]}") from e
        prompt = self.tokenizer.apply_chat_template(request.messages, tools=request.tools, tokenize=False,
                                                    add_generation_prompt=True)
        out = _post(f"{self.base_url}/completions", {"model": self.model, "prompt": prompt, **sampling},
                    self.api_key, self.timeout)
        try:
            return out["choices"][0]["text"]
        except (KeyError, IndexError, TypeError) as e:
            raise EndpointError(f"unexpected completion payload: {str(out)[:300]}") from e

    def make_generate(self, task: Any) -> GenerateFn:
        if self.tokenizer is None:
            raise ValueError("multi-turn evaluation renders the conversation locally: pass --tokenizer PATH")
        tok = self.tokenizer

        def call(prompt_ids: list[int], params: dict) -> tuple[list[int], list[float]]:
            payload = {"model": self.model, "prompt": prompt_ids, **self._sampling_payload(),
                       "logprobs": 1, "return_tokens_as_token_ids": True}
            for k in ("temperature", "top_p", "max_tokens"):
                if k in params:
                    payload[k] = params[k]
            choice = _post(f"{self.base_url}/completions", payload, self.api_key, self.timeout)["choices"][0]
            lp = choice.get("logprobs") or {}
            toks = lp.get("tokens") or []
            if toks and all(isinstance(t, str) and t.startswith("token_id:") for t in toks):
                ids = [int(t.split(":", 1)[1]) for t in toks]
                lps = [float(x) if x is not None else 0.0 for x in (lp.get("token_logprobs") or [0.0] * len(ids))]
            else:
                # server without token ids: re-tokenise (may differ from the sampled ids; fine for scoring)
                ids = tok.encode(choice.get("text", ""), add_special_tokens=False)
                lps = [0.0] * len(ids)
                if choice.get("finish_reason") == "stop":
                    ids += _eos_ids(tok)[:1]
                    lps.append(0.0)
            return ids, lps

        async def generate(prompt_ids: list[int], sampling_params: dict) -> tuple[list[int], list[float]]:
            return await asyncio.to_thread(call, list(prompt_ids), dict(sampling_params or {}))

        return generate

    def describe(self) -> dict[str, Any]:
        d = {**super().describe(), "base_url": self.base_url, "model": self.model, "api": self.api,
             "sampling": self.sampling.as_params()}
        if self.api == "chat":  # single-turn prompts are rendered by the server's own chat template
            d["single_turn_template"] = "server-side (chat completions)"
        return d


# ----------------------------------------------------------------------------------------------------------
# In-process transformers model


class TransformersPolicy(Policy):
    """A causal LM loaded in this process (``AutoModelForCausalLM`` + ``AutoTokenizer`` from one path, or
    given objects). Greedy when temperature is 0. Slow on CPU: meant for small checkpoints and tests."""

    kind = "transformers"

    def __init__(self, model_or_path: Any, *, prompt: PromptConfig, tokenizer=None,
                 sampling: SamplingConfig | None = None, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(model_or_path, str):
            self.path = model_or_path
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_or_path)
            self.model = AutoModelForCausalLM.from_pretrained(model_or_path, dtype=torch.float32)
        else:
            self.path = getattr(getattr(model_or_path, "config", None), "_name_or_path", None) or "<in-memory>"
            self.model, self.tokenizer = model_or_path, tokenizer
        if self.tokenizer is None:
            raise ValueError("TransformersPolicy needs a tokenizer with a chat template")
        self.model.to(device).eval()
        if sampling is not None and sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        self.device, self.prompt = device, prompt
        self.sampling = sampling or SamplingConfig()
        self._lock = threading.Lock()  # one generate at a time: the model is shared

    def _generate_ids(self, prompt_ids: list[int], params: dict) -> tuple[list[int], list[float]]:
        from dipo_tools.engines.generation import sample_with_logprobs

        temp = float(params.get("temperature", self.sampling.temperature))
        max_new = int(params.get("max_tokens", params.get("max_new_tokens", self.sampling.max_tokens)))
        eos = _eos_ids(self.tokenizer)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        # the training engine's sampler: one step's logits at a time, log-probs at the sampling temperature;
        # seeded once at construction, so successive samples differ and runs repeat
        with self._lock:
            (new, lps), = sample_with_logprobs(
                self.model, [list(prompt_ids)], [max_new], temperature=temp, stop_ids=eos, pad_id=pad,
                top_p=float(params.get("top_p", self.sampling.top_p)), top_k=int(params.get("top_k") or 0))
        return new, lps

    def complete(self, request: Request) -> str:
        ids = self.tokenizer.apply_chat_template(request.messages, tools=request.tools, tokenize=True,
                                                 add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        new, _ = self._generate_ids(list(ids), self.sampling.as_params())
        eos = set(_eos_ids(self.tokenizer))
        return self.tokenizer.decode([t for t in new if t not in eos], skip_special_tokens=False)

    def make_generate(self, task: Any) -> GenerateFn:
        async def generate(prompt_ids: list[int], sampling_params: dict) -> tuple[list[int], list[float]]:
            params = {**self.sampling.as_params(), **(sampling_params or {})}
            return await asyncio.to_thread(self._generate_ids, list(prompt_ids), params)

        return generate

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.path, "sampling": self.sampling.as_params()}


class MathOraclePolicy(Policy):
    """Answers every math problem with its reference answer in ``\\boxed{}`` (a harness self-test)."""

    kind = "oracle"

    def __init__(self):
        self.answers: dict[str, str] = {}

    def add_answers(self, answers: dict[str, str]) -> None:
        self.answers.update(answers)

    def complete(self, request: Request) -> str:
        return f"The answer is \\boxed{{{self.answers[request.id]}}}."
