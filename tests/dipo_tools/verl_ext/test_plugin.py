"""A fresh process with only ``import verl`` sees our estimator and agent loop (verl.plugins entry point)."""
from __future__ import annotations

import json
import os
import subprocess
import sys



PROBE = r"""
import json, verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
print(json.dumps({"dipo": "dipo" in ADV_ESTIMATOR_REGISTRY,
                  "agent": _agent_loop_registry.get("dipo_tool_agent", {}).get("_target_")}))
"""


def test_bare_import_verl_registers_dipo_and_the_agent_loop():
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_USE_EXTERNAL_PLUGINS", "VERL_USE_EXTERNAL_MODULES")}
    env["PYTHONWARNINGS"] = "ignore"
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env,
                         cwd="/")  # not the repo root: the installed package must be found, not the source tree
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"dipo": True, "agent": "dipo_tools.verl_ext.agent_loop.DiPOToolAgentLoop"}
