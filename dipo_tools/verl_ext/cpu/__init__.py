"""verl's real trainer on CPU: a device platform, the ``hf`` rollout server and two CPU fixes.

Loaded in every Ray process through verl's own switches (:data:`ENV`): ``VERL_USE_EXTERNAL_MODULES``
imports this module at ``import verl``; ``VERL_PLATFORM=cpu`` selects :class:`~.platform.PlatformCPU`;
``VERL_ENGINE_DEVICE=cuda`` makes verl's engine registry pick its FSDP engine (it is registered for
``cuda``/``npu`` only; the computation stays on CPU because the platform's device is ``cpu``).

Importing the module always registers the platform and the ``hf`` rollout (harmless on GPU machines:
neither is ever auto-selected); the CPU fixes of :mod:`.patches` are applied only when
``VERL_PLATFORM=cpu``. :func:`cpu_overrides` lists the config settings a CPU run needs.
"""
from __future__ import annotations

import os

from dipo_tools.verl_ext.cpu import patches
from dipo_tools.verl_ext.cpu.platform import PLATFORM_NAME, PlatformCPU
from dipo_tools.verl_ext.cpu.rollout import ROLLOUT_NAME, register as _register_rollout

MODULE = __name__

#: environment of every process of a CPU run (Ray passes it to its workers)
ENV = {
    "VERL_PLATFORM": PLATFORM_NAME,
    "VERL_USE_EXTERNAL_MODULES": MODULE,
    "VERL_ENGINE_DEVICE": "cuda",
    "TOKENIZERS_PARALLELISM": "false",
    # glibc serves each logits tensor (tokens x vocabulary floats, GBs) from a fresh mmap and unmaps it on
    # free, so every log-prob pass faults all its pages in again: most of a CPU step was kernel time. Keep
    # freed memory for reuse: no mmap, no trimming, and one arena (verl computes on a non-main thread, whose
    # arena cannot hold a GB block without mmap). No effect outside glibc.
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
}


def cpu_active() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


def cpu_overrides(n_workers: int = 1) -> list[str]:
    """Hydra overrides that make any of our verl configs run on CPU with ``n_workers`` trainer processes.

    Each fixes one GPU assumption (``docs/verl_cpu.md`` has the table): logical Ray GPUs for verl's
    placement groups, enough logical CPUs for TransferQueue's actors, sdpa attention, FSDP2, one-way
    tensor parallelism, the ``hf`` rollout, and one TransferQueue storage unit.
    """
    return [
        f"trainer.n_gpus_per_node={n_workers}",
        "trainer.nnodes=1",
        "trainer.device=cpu",
        f"+ray_kwargs.ray_init.num_gpus={n_workers}",
        "ray_kwargs.ray_init.num_cpus=16",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}",
    ]


_register_rollout()
if cpu_active():
    patches.apply()

__all__ = ["ENV", "PlatformCPU", "ROLLOUT_NAME", "cpu_active", "cpu_overrides"]
