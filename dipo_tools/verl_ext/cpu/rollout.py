"""Rollout name ``hf``: a transformers rollout server behind verl's own server interfaces.

verl 0.9.1 always rolls out through an async server (vLLM, SGLang, TRT-LLM); none runs without CUDA.
This module gives verl the same three pieces a server backend provides, so the rest of verl (agent-loop
workers, the load balancer, TransferQueue, weight sync) runs unchanged:

* :class:`HFRolloutServer` — a Ray actor with ``async generate(prompt_ids, sampling_params, request_id,
  ...) -> TokenOutput`` (token ids + per-token log-probs, ``extra_fields["global_steps"]`` as the vLLM
  server sets it), ``load_weights`` for the actor's per-tensor stream, and the lifecycle methods
  (``wake_up``, ``sleep``, KV-cache and abort calls) as no-ops. Concurrent requests are batched.
* :class:`HFReplica` — a ``RolloutReplica`` registered as ``"hf"`` whose ``launch_servers`` starts one
  server per replica (hybrid mode: the replica shares its trainer workers' placement).
* :class:`HFServerAdapter` — the ``BaseRollout`` that lives in each trainer worker: every rank consumes the
  actor's weight stream (the FSDP gather is collective), rank 0 of a replica pushes it to its server.

Select it with ``actor_rollout_ref.rollout.name=hf``; :func:`register` (run by the CPU module) adds it to
verl's registries. What it does not reproduce of vLLM is listed in ``docs/verl_cpu.md``.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Generator, Optional

import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig
from transformers import AutoModelForCausalLM
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutMode, RolloutReplica, RolloutReplicaRegistry, TokenOutput

from dipo_tools.verl_ext.cpu.sampling import SamplingRequest, generate_batch, max_new_tokens

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"
SERVER_PREFIX = f"{ROLLOUT_NAME}_server"
#: how long the server waits for more requests before starting a batch (agent loops submit in bursts)
BATCH_WINDOW_S = 0.005


def server_actor_name(replica_rank: int, node_rank: int = 0) -> str:
    return f"{SERVER_PREFIX}_{replica_rank}_{node_rank}"


def _stop_token_ids(model_config: HFModelConfig) -> list[int]:
    """EOS ids as vLLM stops on them: the generation config's and the tokenizer's."""
    ids: set[int] = set()
    gen = getattr(model_config, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    for value in (eos if isinstance(eos, (list, tuple)) else [eos]):
        if value is not None:
            ids.add(int(value))
    tok = getattr(model_config, "tokenizer", None)
    if tok is not None and tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    return sorted(ids)


class HFRolloutServer:
    """Token-in/token-out generation with a transformers model (one per replica; see module docstring)."""

    def __init__(self, config: Any, model_config: Any, rollout_mode: RolloutMode, replica_rank: int,
                 node_rank: int = 0, **unused: Any):
        self.config = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.rollout_mode = rollout_mode
        self.replica_rank = replica_rank
        self.node_rank = node_rank
        self.global_steps: Optional[int] = None
        override = dict(getattr(self.model_config, "override_config", {}) or {})
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_config.local_path,
            dtype=torch.float32,
            attn_implementation=override.get("attn_implementation", "sdpa"),
            trust_remote_code=bool(getattr(self.model_config, "trust_remote_code", False)),
        ).eval()
        self.stop_token_ids = _stop_token_ids(self.model_config)
        tok = getattr(self.model_config, "tokenizer", None)
        pad = getattr(tok, "pad_token_id", None) if tok is not None else None
        self.pad_token_id = int(pad if pad is not None else (self.stop_token_ids or [0])[0])
        self.max_model_len = int(self.config.max_model_len or (self.config.prompt_length + self.config.response_length))
        self.generator = torch.Generator().manual_seed(int(self.config.seed) + replica_rank)
        self._queue: list[tuple[SamplingRequest, asyncio.Future]] = []
        self._wakeup: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None
        self._model_lock: Optional[asyncio.Lock] = None
        self.num_requests = 0
        self.num_batches = 0
        self.num_weight_updates = 0

    # ------------------------------------------------------------------ server surface verl calls
    def get_master_address(self):
        return "127.0.0.1", 0, 0

    def get_server_address(self):
        # a unique key for verl's load balancer; there is no HTTP endpoint
        return f"{ROLLOUT_NAME}-replica-{self.replica_rank}", self.node_rank

    async def launch_server(self, **unused: Any) -> None:
        return None

    async def generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str,
                       image_data: Any = None, video_data: Any = None, audio_data: Any = None,
                       mm_processor_kwargs: Any = None, priority: int = 0, **unused: Any) -> TokenOutput:
        if image_data is not None or video_data is not None or audio_data is not None:
            raise NotImplementedError("the 'hf' CPU rollout server is text-only")
        params = dict(sampling_params)
        prompt_ids = [int(t) for t in prompt_ids]
        request = SamplingRequest(
            prompt_ids=prompt_ids,
            max_tokens=max_new_tokens(len(prompt_ids), params, prompt_length=self.config.prompt_length,
                                      response_length=self.config.response_length, max_model_len=self.max_model_len),
            temperature=float(params.get("temperature", 1.0)),
            top_p=float(params.get("top_p", 1.0) if params.get("top_p") is not None else 1.0),
            top_k=int(params.get("top_k", -1) if params.get("top_k") is not None else -1),
            repetition_penalty=float(params.get("repetition_penalty", 1.0) or 1.0),
            ignore_eos=bool(params.get("ignore_eos", False)),
            stop_token_ids=self.stop_token_ids + [int(t) for t in params.get("stop_token_ids") or []],
        )
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._ensure_worker()
        self._wakeup.set()
        token_ids, log_probs = await future
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs if params.get("logprobs") else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._model_lock = self._model_lock or asyncio.Lock()
            self._worker = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        """Batch whatever is queued (up to ``max_num_seqs``) and generate it off the event loop."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(BATCH_WINDOW_S)
            while self._queue:
                batch, self._queue = self._queue[: self.config.max_num_seqs], self._queue[self.config.max_num_seqs:]
                async with self._model_lock:
                    try:
                        outputs = await asyncio.to_thread(
                            generate_batch, self.model, [r for r, _ in batch],
                            pad_token_id=self.pad_token_id, generator=self.generator,
                        )
                    except Exception as exc:  # fail the requests, keep serving
                        for _, fut in batch:
                            if not fut.done():
                                fut.set_exception(exc)
                        continue
                self.num_requests += len(batch)
                self.num_batches += 1
                for (_, fut), out in zip(batch, outputs):
                    if not fut.done():
                        fut.set_result(out)

    async def load_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
        """Copy the actor's weights into the model; every name must be a model parameter or buffer."""
        self._model_lock = self._model_lock or asyncio.Lock()
        async with self._model_lock:
            state = self.model.state_dict()
            unknown = [name for name, _ in named_tensors if name not in state]
            if unknown:
                raise KeyError(f"hf rollout server: weights the model does not have: {unknown[:5]}")
            with torch.no_grad():
                for name, tensor in named_tensors:
                    state[name].copy_(tensor.to(state[name].dtype))
            self.num_weight_updates += 1
        # one line per sync: CPU smoke tests read it as proof that the trainer's weights reached the server
        print(f"[hf-rollout] replica {self.replica_rank}: loaded {len(named_tensors)} tensors from the actor "
              f"(sync {self.num_weight_updates})", flush=True)
        return len(named_tensors)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    def stats(self) -> dict[str, int]:
        return {"requests": self.num_requests, "batches": self.num_batches, "weight_updates": self.num_weight_updates}

    # lifecycle: nothing to free on CPU (no KV-cache pool, no sleep mode)
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0.01)

    async def abort_all_requests(self, reject_request: bool = False, **unused: Any) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, **unused: Any) -> dict[str, Any]:
        return {"aborted": False, "request_id": request_id}

    async def resume_generation(self) -> None:
        return None

    async def start_profile(self, **unused: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


class HFReplica(RolloutReplica):
    """One :class:`HFRolloutServer` per replica; hybrid mode only (trainer and rollout share workers)."""

    async def launch_servers(self) -> None:
        if self.rollout_mode != RolloutMode.HYBRID:
            raise NotImplementedError(
                f"rollout.name=hf supports the hybrid (colocated sync) mode only, got {self.rollout_mode}; "
                "use trainer.v1.trainer_mode=sync with actor_rollout_ref.hybrid_engine=true"
            )
        if self.nnodes != 1:
            raise NotImplementedError("rollout.name=hf runs one server per replica on one node")
        server_cls = ray.remote(HFRolloutServer)
        server = server_cls.options(
            name=server_actor_name(self.replica_rank),
            max_concurrency=self.max_concurrency,
            num_cpus=0,
        ).remote(
            config=self.config, model_config=self.model_config, rollout_mode=self.rollout_mode,
            replica_rank=self.replica_rank, node_rank=0,
        )
        self.servers = [server]
        address, _ = await server.get_server_address.remote()
        self._server_handle = server
        self._server_address = address


class HFServerAdapter(BaseRollout):
    """The trainer-side end of the ``hf`` rollout: pushes weights to this replica's server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, **unused: Any):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = self.config.tensor_model_parallel_size * self.config.data_parallel_size * self.config.pipeline_model_parallel_size
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self._server = None

    def _server_handle(self):
        if self.rollout_rank != 0:
            return None
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    @torch.no_grad()
    async def update_weights(self, weights: Generator[tuple[str, torch.Tensor], None, None],
                             wire_format: str = "named_tensors", global_steps: int | None = None, **kwargs: Any) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"rollout.name=hf receives full tensors only, got wire_format={wire_format!r}")
        # every rank iterates: producing a full tensor from FSDP shards is a collective
        named = [(name, tensor.detach().to("cpu", copy=True)) for name, tensor in weights]
        server = self._server_handle()
        if server is None:
            return
        await server.load_weights.remote(named)
        if global_steps is not None:
            await server.set_global_steps.remote(global_steps)


def register() -> None:
    """Add ``hf`` to verl's rollout registries (idempotent)."""
    RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFReplica)
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{__name__}.HFServerAdapter"
