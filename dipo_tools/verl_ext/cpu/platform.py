"""verl device platform ``cpu``: what verl's device layer needs to run its trainer without an accelerator.

verl asks its platform for a device name, a torch device module, a process-group backend, a Ray
resource name and a few memory/profiling calls (``verl.plugin.platform.PlatformBase``). On CPU the answers
are: device ``cpu``, backend ``gloo``, the Ray resource ``GPU`` (a logical resource that the CPU run
declares with ``ray_init.num_gpus``, so verl's placement groups work unchanged), and no-ops for caches,
streams and profilers. ``current_device()`` is ``torch.device("cpu")``, never an integer: verl passes it
to ``tensor.to(...)``, where an integer would mean ``cuda:N``.

The platform is only chosen explicitly (``VERL_PLATFORM=cpu``); auto-detection never picks it, so
importing this module on a GPU machine changes nothing.
"""
from __future__ import annotations

import os
import types
from contextlib import contextmanager
from typing import Any, Optional

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


def _system_memory() -> tuple[int, int]:
    """``(available, total)`` bytes of system memory, the CPU answer to ``mem_get_info``."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = os.sysconf("SC_PHYS_PAGES") * page
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError):
        available = total
    return available, total


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


class CPUDeviceModule(types.ModuleType):
    """``torch.cpu`` plus the ``torch.cuda``-style calls verl makes on its device module.

    Memory statistics are 0 (the CPU allocator keeps none), caches and IPC are no-ops, the RNG is the
    CPU generator. Anything else is looked up on ``torch.cpu``; a missing name raises AttributeError
    naming this module, so a verl upgrade that calls something new fails where it happens.
    """

    def __init__(self) -> None:
        super().__init__("dipo_tools.verl_ext.cpu.device")
        self.empty_cache = _noop
        self.ipc_collect = _noop
        self.reset_peak_memory_stats = _noop
        self.set_per_process_memory_fraction = _noop
        self.memory_allocated = _zero
        self.max_memory_allocated = _zero
        self.memory_reserved = _zero
        self.max_memory_reserved = _zero
        self.mem_get_info = lambda *a, **k: _system_memory()
        self.get_device_name = lambda *a, **k: "CPU"
        self.is_available = lambda: True
        self.device_count = lambda: 1
        self.current_device = lambda: torch.device("cpu")
        self.set_device = _noop
        self.synchronize = _noop
        self.manual_seed = torch.manual_seed
        self.manual_seed_all = torch.manual_seed
        self.get_rng_state = lambda *a, **k: torch.get_rng_state()
        self.set_rng_state = lambda state, *a, **k: torch.set_rng_state(state)

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(torch.cpu, name)
        except AttributeError:
            raise AttributeError(f"{self.__name__} (verl's CPU device module) has no {name!r}") from None


DEVICE_MODULE = CPUDeviceModule()


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl platform for CPU-only machines (see the module docstring)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # explicit opt-in only: auto-detection must keep choosing a real accelerator when there is one
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME

    def current_device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets it for actors holding the logical "GPU" resource; nothing on CPU reads it
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
