"""Test-suite wide settings: no network, no writes into site-packages."""
from __future__ import annotations

import os
import pathlib
import tempfile

# Nothing in the suite may reach a model or data hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# bfcl-eval mkdirs result/score folders under BFCL_PROJECT_ROOT at import time; keep them out of the venv.
os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-root-"))

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Property tests draw the same examples on every run, so CI is deterministic (failures replay exactly).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("deterministic", derandomize=True, deadline=None, print_blob=True)
_hypothesis_settings.load_profile("deterministic")
