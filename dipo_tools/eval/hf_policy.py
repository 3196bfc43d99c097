"""An in-process transformers model as a policy, sampling with the engine's one generation path."""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dipo_tools.engines.generation import sample_with_logprobs
from dipo_tools.eval.policy_base import GenerateFn, Policy, SamplingConfig, _eos_ids
from dipo_tools.eval.prompts import PromptConfig, Request


class TransformersPolicy(Policy):
    """A causal LM loaded in this process (``AutoModelForCausalLM`` + ``AutoTokenizer`` from one path, or
    given objects). Greedy when temperature is 0. Slow on CPU: meant for small checkpoints and tests."""

    kind = "transformers"

    def __init__(self, model_or_path: Any, *, prompt: PromptConfig, tokenizer=None,
                 sampling: SamplingConfig | None = None, device: str = "cpu"):
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
