"""The CPU platform as verl loads it: a fresh process with the two environment switches set."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from dipo_tools.verl_ext.cpu import ENV

PROBE = textwrap.dedent("""
    import json, os, torch
    import verl  # VERL_USE_EXTERNAL_MODULES imports dipo_tools.verl_ext.cpu here
    from verl.utils import device, distributed
    import verl.workers.engine_workers as engine_workers
    from verl.workers.engine.base import EngineRegistry
    import verl.utils.fsdp_utils as fsdp_utils
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29517", RANK="0", WORLD_SIZE="1")
    engine_workers.initialize_global_process_group_ray(timeout_second=None)  # what TrainingWorker runs
    t = torch.ones(3)
    torch.distributed.all_reduce(t)
    mod = device.get_torch_device()
    print(json.dumps({
        "device": device.get_device_name(), "backend": device.get_nccl_backend(),
        "resource": device.get_resource_name(), "device_id": str(device.get_device_id()),
        "pg_backend": torch.distributed.get_backend(), "all_reduce": t.tolist(),
        "device_module_name": mod.get_device_name(), "mem": list(mod.mem_get_info()),
        "engine": EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__,
        "offload_pins": fsdp_utils.CPUOffloadPolicy(pin_memory=True).pin_memory,
    }))
""")


def test_verl_runs_on_the_cpu_platform_in_a_fresh_process():
    env = {**os.environ, **ENV}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["device"], got["backend"], got["resource"]) == ("cpu", "gloo", "GPU")
    assert got["device_id"] == "cpu"  # never an int: tensor.to(0) would mean cuda:0
    assert got["pg_backend"] == "gloo" and got["all_reduce"] == [1.0, 1.0, 1.0]
    assert got["device_module_name"] == "CPU" and got["mem"][1] > 0
    assert got["engine"] == "FSDPEngineWithLMHead"
    assert got["offload_pins"] is False
