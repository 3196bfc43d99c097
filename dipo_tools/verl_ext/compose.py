"""Where our verl configs live and how hydra composes them (no validation, no error translation).

The lowest module of the verl integration: the checks (``config_checks``) compose the base config to learn
every valid key, and the entry point (``main.compose_config``) adds the one-line error for a misspelt key.
"""
from __future__ import annotations

import pathlib
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

CONFIG_MODULE = "dipo_tools.verl_ext.config"
BASE_CONFIG = "dipo_trainer"
SEARCHPATH_OVERRIDE = "hydra.searchpath=[pkg://dipo_tools.verl_ext.config,pkg://verl.trainer.config]"
#: Experiment configs shipped in the repository (tool and math tracks).
REPO_CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs" / "verl"


def resolve_config(config_path_or_name: str | None) -> tuple[str, str]:
    """``(config_dir, config_name)`` for a yaml path, a name in ``configs/verl/``, or our base config."""
    if not config_path_or_name:
        return str(pathlib.Path(__file__).parent / "config"), BASE_CONFIG
    path = pathlib.Path(config_path_or_name).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise FileNotFoundError(f"{path}: config file not found")
        return str(path.resolve().parent), path.stem
    for folder in (REPO_CONFIG_DIR, pathlib.Path(__file__).parent / "config"):
        if (folder / f"{config_path_or_name}.yaml").exists():
            return str(folder), str(config_path_or_name)
    shipped = sorted(p.stem for p in REPO_CONFIG_DIR.glob("*.yaml")) if REPO_CONFIG_DIR.exists() else []
    raise FileNotFoundError(
        f"config {config_path_or_name!r} is neither a .yaml path nor a shipped config; shipped: {shipped}"
    )


def compose_base(config_path_or_name: str | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """hydra's composition of a config (defaults resolved, overrides applied); raises hydra's own errors."""
    config_dir, name = resolve_config(config_path_or_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        # the search path as an override too, so config fragments (configs/verl/_*.yaml) compose on their own
        return compose(config_name=name, overrides=[SEARCHPATH_OVERRIDE, *overrides])
