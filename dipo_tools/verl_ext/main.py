"""Entry point: ``python -m dipo_tools.verl_ext.main [--config-path DIR --config-name NAME] key=value ...``.

Same command line as ``python -m verl.trainer.main_ppo`` (hydra; every verl key can be overridden), with
our base config ``dipo_trainer`` (verl's ``ppo_trainer`` + DiPO defaults) and a TaskRunner whose ``"sync"``
trainer is :class:`~dipo_tools.verl_ext.trainer.DiPOTrainerSync`. ``run_verl_training`` is the same thing
as a function (used by ``dipo train --engine verl`` and the ``scripts/train_*.sh`` launchers).
"""
from __future__ import annotations

import os
import pathlib
import sys
from typing import Sequence

import hydra
from omegaconf import DictConfig, OmegaConf

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


def compose_config(config_path_or_name: str | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the full verl config (hydra defaults resolved, overrides applied) without running anything."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from hydra.errors import ConfigCompositionException

    config_dir, name = resolve_config(config_path_or_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        # the search path as an override too, so config fragments (configs/verl/_*.yaml) compose on their own
        try:
            return compose(config_name=name, overrides=[SEARCHPATH_OVERRIDE, *overrides])
        except ConfigCompositionException as exc:
            raise _composition_error(exc) from None


def _composition_error(exc: Exception) -> Exception:
    """hydra's "Could not override 'KEY'" (a 60-line traceback) as one line with the nearest valid keys."""
    import re

    from dipo_tools.verl_ext.validation import ConfigError

    text = str(exc) + " " + str(exc.__cause__ or "")
    match = re.search(r"Could not override '([^']+)'", text)
    if match is None:
        return ConfigError(" ".join(str(exc).split()))
    key = match.group(1)
    from dipo_tools.verl_ext.config_checks import _defaults, close_matches

    return ConfigError(f"{key} is not a verl or dipo setting{close_matches(key, list(_defaults()))}; fix its name, "
                       f"or add a new key on purpose with +{key}=VALUE")


def _task_runner_class():
    """A Ray actor class: verl's TaskRunnerV1 whose "sync" trainer is DiPOTrainerSync.

    Built lazily so importing this module does not import ray/TransferQueue. The trainer registry entry is
    replaced inside the actor process (where the trainer is built), not registered under a new name: verl
    tests ``trainer_mode == "sync"`` literally in several places.
    """
    import ray
    from verl.trainer.main_ppo import TaskRunnerV1

    base = TaskRunnerV1.__ray_actor_class__

    class DiPOTaskRunner(base):  # type: ignore[misc, valid-type]
        def run(self, config: DictConfig):
            from verl.trainer.ppo.v1 import trainer_base

            from dipo_tools.verl_ext.trainer import DiPOTrainerSync

            trainer_base.TRAINER_REGISTRY["sync"] = DiPOTrainerSync
            return super().run(config)

    DiPOTaskRunner.__qualname__ = DiPOTaskRunner.__name__ = "DiPOTaskRunner"
    return ray.remote(DiPOTaskRunner)


def run(config: DictConfig) -> None:
    """Validate (ours + verl's) and launch verl's V1 training loop with the DiPO trainer."""
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    from dipo_tools.verl_ext.validation import validate_training_config

    auto_set_device(config)
    for note in validate_training_config(config, check_files=True):
        print(f"[dipo] note: {note}")
    if not config.trainer.use_v1:
        raise SystemExit("dipo_tools.verl_ext.main runs verl's V1 trainer only; set trainer.use_v1=true")
    run_ppo(config, task_runner_class=_task_runner_class())


def run_verl_training(config_path_or_name: str | None, overrides: list[str], dry_run: bool = False,
                      allow_missing_data: bool = False) -> DictConfig:
    """Compose ``config_path_or_name`` + ``overrides``; validate on CPU (``dry_run``) or train.

    Returns the composed config. ``dry_run`` never starts Ray and never touches a GPU or the network; it
    refuses missing data files unless ``allow_missing_data`` (data that lives on the cluster).
    """
    from dipo_tools.verl_ext.validation import validate_training_config

    config = compose_config(config_path_or_name, overrides)
    if dry_run:
        notes = validate_training_config(config, check_files=not allow_missing_data)
        print(OmegaConf.to_yaml(config, resolve=False) if os.environ.get("DIPO_PRINT_CONFIG") else "", end="")
        for note in notes:
            print(f"[dipo] note: {note}")
        algo = config.algorithm
        print(
            f"[dipo] dry run OK: {config_path_or_name or BASE_CONFIG} "
            f"(adv_estimator={algo.adv_estimator}, model={config.actor_rollout_ref.model.path}, "
            f"gpus={config.trainer.nnodes}x{config.trainer.n_gpus_per_node})"
        )
        return config
    run(config)
    return config


@hydra.main(config_path="config", config_name=BASE_CONFIG, version_base=None)
def main(config: DictConfig) -> None:
    run(config)


if __name__ == "__main__":
    sys.exit(main())
