"""An OpenAI-compatible endpoint as a policy (what ``vllm serve <checkpoint>`` exposes): the HTTP client."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from dipo_tools.eval.policy_base import GenerateFn, Policy, SamplingConfig, _eos_ids
from dipo_tools.eval.prompts import PromptConfig, Request


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
