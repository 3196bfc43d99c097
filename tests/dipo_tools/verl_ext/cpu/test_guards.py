"""Guards: every verl and torch internal the CPU backend relies on, pinned so an upgrade fails here.

The CPU backend (dipo_tools/verl_ext/cpu) plugs into verl 0.9.1 through registries, module attributes and
an environment switch. Each test names what to re-check if it fails after a verl or torch upgrade.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import pathlib

import verl


def _verl_source(relative: str) -> str:
    return (pathlib.Path(verl.__file__).parent / relative).read_text()


def test_verl_version_is_the_pinned_one():
    assert verl.__version__ == "0.9.1", "the CPU backend is written against verl 0.9.1: re-check this file"


def test_process_group_default_backend_is_what_the_patch_replaces():
    from verl.utils import distributed

    params = list(inspect.signature(distributed.initialize_global_process_group_ray).parameters)
    assert params == ["timeout_second", "backend"]
    assert 'backend or f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"' in inspect.getsource(
        distributed.initialize_global_process_group_ray)
    # engine_workers binds the function by name at import: the patch must replace it there too
    assert "from verl.utils.distributed import initialize_global_process_group_ray" in _verl_source(
        "workers/engine_workers.py")


def test_offload_policy_is_the_dataclass_the_patch_subclasses():
    import torch.distributed.fsdp as fsdp

    assert dataclasses.is_dataclass(fsdp.CPUOffloadPolicy)
    assert "pin_memory" in {f.name for f in dataclasses.fields(fsdp.CPUOffloadPolicy)}
    assert "CPUOffloadPolicy(pin_memory=True)" in _verl_source("workers/engine/fsdp/transformer_impl.py")
    assert "from torch.distributed.fsdp import CPUOffloadPolicy" in _verl_source("utils/fsdp_utils.py")


def test_engine_registry_honours_the_engine_device_switch():
    from verl.workers.engine.base import EngineRegistry

    assert 'os.getenv("VERL_ENGINE_DEVICE")' in inspect.getsource(EngineRegistry.get_engine_cls)
    assert '@EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device=["cuda", "npu"])' \
        in _verl_source("workers/engine/fsdp/transformer_impl.py")


def test_rollout_registries_have_the_shape_we_register_into():
    from verl.workers.rollout import base
    from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry

    from dipo_tools.verl_ext.cpu.rollout import ROLLOUT_NAME, HFReplica, HFServerAdapter

    assert isinstance(base._ROLLOUT_REGISTRY, dict) and ("vllm", "async") in base._ROLLOUT_REGISTRY
    assert base.get_rollout_class(ROLLOUT_NAME, "async") is HFServerAdapter
    assert RolloutReplicaRegistry.get(ROLLOUT_NAME) is HFReplica
    assert RolloutReplica.__abstractmethods__ == frozenset({"launch_servers"})
    assert not HFReplica.__abstractmethods__ and not HFServerAdapter.__abstractmethods__


def test_server_answers_every_call_verl_makes_on_a_rollout_server():
    from dipo_tools.verl_ext.cpu.rollout import HFRolloutServer

    # what RolloutReplica / LLMServerManager / the server adapter call on server actors in 0.9.1
    called = {"wake_up", "sleep", "abort_all_requests", "resume_generation", "clear_kv_cache", "release_kv_cache",
              "resume_kv_cache", "start_profile", "stop_profile", "generate", "set_global_steps",
              "wait_for_requests_to_drain", "abort_request", "launch_server", "get_server_address"}
    replica_src = _verl_source("workers/rollout/replica.py")
    for name in ("wake_up", "sleep", "abort_all_requests", "resume_generation", "clear_kv_cache",
                 "release_kv_cache", "resume_kv_cache", "start_profile", "stop_profile"):
        assert f"server.{name}.remote(" in replica_src
    assert all(callable(getattr(HFRolloutServer, name, None)) for name in called)


def test_generate_accepts_what_the_server_client_sends():
    from dipo_tools.verl_ext.cpu.rollout import HFRolloutServer

    client_src = _verl_source("workers/rollout/llm_server.py")
    for kw in ("request_id=", "prompt_ids=prompt_ids", "sampling_params=sampling_params", "image_data=image_data",
               "video_data=video_data"):
        assert kw in client_src
    # the client adds the weights-version bounds from the server's "global_steps"
    assert 'output.extra_fields.get("global_steps")' in client_src
    params = inspect.signature(HFRolloutServer.generate).parameters
    assert {"prompt_ids", "sampling_params", "request_id", "image_data", "video_data"} <= set(params)


def test_max_tokens_rule_matches_the_vllm_server():
    # vllm is not importable here: read the 0.9.1 server's source for the rule sampling.max_new_tokens mirrors
    src = _verl_source("workers/rollout/vllm_rollout/vllm_async_server.py")
    for line in ('max_possible_tokens = self.config.max_model_len - len(prompt_ids)',
                 'max_tokens = sampling_params.pop("max_tokens")',
                 'max_tokens = sampling_params.pop("max_new_tokens")',
                 'self.config.response_length, self.config.prompt_length + self.config.response_length - len(prompt_ids)',
                 'max_tokens = max(1, min(max_tokens, max_possible_tokens))'):
        assert line in src


def test_platform_is_complete_and_opt_in(monkeypatch):
    from verl.plugin.platform import PlatformRegistry

    from dipo_tools.verl_ext.cpu.platform import PlatformCPU

    assert PlatformRegistry.get("cpu") is PlatformCPU and not PlatformCPU.__abstractmethods__
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    assert not PlatformCPU().is_platform_available(use_smi_check=True)  # never auto-detected
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    assert PlatformCPU().is_platform_available(use_smi_check=True)


def test_the_external_module_switch_is_read_at_import():
    src = _verl_source("__init__.py")
    assert 'os.getenv("VERL_USE_EXTERNAL_MODULES", "")' in src
    assert importlib.util.find_spec("dipo_tools.verl_ext.cpu") is not None


def test_an_installed_trl_does_not_break_verls_worker():
    """verl 0.9.1's FSDP worker imports AutoModelForCausalLMWithValueHead from trl whenever TRL is installed
    (models/transformers/monkey_patch.py); TRL >= 1.14 has neither location and every training start fails.
    The optional `bench` extra pins a TRL that has it."""
    import tomllib

    from verl.utils.import_utils import is_trl_available

    src = _verl_source("models/transformers/monkey_patch.py")
    assert "from trl.experimental.ppo import AutoModelForCausalLMWithValueHead" in src
    pins = tomllib.loads((pathlib.Path(__file__).resolve().parents[4] / "pyproject.toml").read_text())
    assert pins["project"]["optional-dependencies"]["bench"] == ["trl==1.12.0"]
    if is_trl_available():
        try:
            from trl.experimental.ppo import AutoModelForCausalLMWithValueHead  # noqa: F401
        except ImportError:
            from trl import AutoModelForCausalLMWithValueHead  # noqa: F401
