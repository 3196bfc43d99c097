"""The two places where verl 0.9.1 hard-codes an accelerator below its platform layer, and their CPU fix.

1. ``verl.utils.distributed.initialize_global_process_group_ray`` builds the backend string
   ``"cpu:gloo,{device}:{backend}"``; with device ``cpu`` that is ``"cpu:gloo,cpu:gloo"``, which torch
   refuses ("Duplicate device type cpu"). On CPU the default becomes plain ``"gloo"``.
2. The FSDP2 engine offloads a reference model with ``CPUOffloadPolicy(pin_memory=True)``; pinning needs
   an accelerator ("Cannot access accelerator device"). On CPU the policy never pins.

Both are applied only by :func:`apply` (called when the CPU platform is active). They replace module
attributes, so ``tests/dipo_tools/verl_ext/cpu/test_guards.py`` pins the verl and torch code they rely on.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any

import torch.distributed.fsdp as fsdp
import verl.utils.distributed as distributed

#: modules that bind ``initialize_global_process_group_ray`` by name (``from ... import``)
PROCESS_GROUP_USERS = ("verl.utils.distributed", "verl.workers.engine_workers")
#: modules that bind ``CPUOffloadPolicy`` by name
OFFLOAD_POLICY_USERS = ("torch.distributed.fsdp", "verl.utils.fsdp_utils", "verl.workers.engine.fsdp.transformer_impl")

_APPLIED = False


def _cpu_process_group(original):
    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    initialize_global_process_group_ray.__dipo_cpu__ = True
    return initialize_global_process_group_ray


def _unpinned_offload_policy(original: type) -> type:
    @dataclasses.dataclass
    class UnpinnedCPUOffloadPolicy(original):  # type: ignore[misc, valid-type]
        """``CPUOffloadPolicy`` that never pins memory (pinning needs an accelerator)."""

        def __post_init__(self) -> None:
            parent = getattr(super(), "__post_init__", None)
            if parent is not None:
                parent()
            self.pin_memory = False

    UnpinnedCPUOffloadPolicy.__dipo_cpu__ = True
    return UnpinnedCPUOffloadPolicy


def _replace(module_names: tuple[str, ...], attr: str, value: Any) -> None:
    for name in module_names:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, attr):
            setattr(module, attr, value)


def apply() -> None:
    """Install both fixes (idempotent). Must run before verl builds a worker; the CPU module does it at
    ``import verl`` time through ``VERL_USE_EXTERNAL_MODULES``."""
    global _APPLIED
    if _APPLIED:
        return
    pg = _cpu_process_group(distributed.initialize_global_process_group_ray)
    _replace(PROCESS_GROUP_USERS, "initialize_global_process_group_ray", pg)
    policy = _unpinned_offload_policy(fsdp.CPUOffloadPolicy)
    _replace(OFFLOAD_POLICY_USERS, "CPUOffloadPolicy", policy)
    _APPLIED = True
