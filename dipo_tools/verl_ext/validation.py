"""Compose and validate a full verl config on CPU, plus the checks verl does not know about (DiPO).

``validate_training_config`` is what ``--dry-run`` runs: our DiPO rules, verl's own ``validate_config``
(batch-size arithmetic, micro-batch settings, the actor dataclass), and instantiation of the other
dataclass-backed sections (rollout, reward, algorithm, critic when used), exactly as verl builds them at
start-up. Nothing here needs a GPU, Ray or a model download.
"""
from __future__ import annotations

import difflib
import json
import os
import pathlib
import warnings
from typing import Any

import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf, open_dict
from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config
from verl.utils.import_utils import load_extern_object

from dipo_tools.config_utils import ConfigError
from dipo_tools.verl_ext.agent_loop import TaskRowError, runner_config_from
from dipo_tools.verl_ext.config_checks import batch_problems, value_problems
from dipo_tools.verl_ext.estimator import ESTIMATOR_NAME, dipo_config_from_algorithm
from tool_envs.registry import list_envs, load_env


def check_dipo_settings(config: DictConfig) -> None:
    """Refuse settings that break DiPO; a no-op for other estimators."""
    algo = config.algorithm
    if algo.adv_estimator != ESTIMATOR_NAME:
        return
    filter_groups = algo.get("filter_groups", None)
    reallocating = bool((algo.get("dipo", None) or {}).get("enabled", True))
    if filter_groups is not None and filter_groups.get("enable", False) and reallocating:
        raise ConfigError(
            "algorithm.adv_estimator=dipo with algorithm.filter_groups.enable=true: DAPO dynamic sampling drops the "
            "zero-variance (all-right / all-wrong) groups that DiPO reallocates reward in. Set "
            "algorithm.filter_groups.enable=false (DiPO keeps DAPO's clip-higher and token-mean loss), or "
            "algorithm.dipo.enabled=false for a DAPO baseline."
        )
    mode = config.trainer.get("v1", {}).get("trainer_mode", "sync")
    if not config.trainer.get("use_v1", True) or mode != "sync":
        raise ConfigError(
            f"adv_estimator=dipo runs in verl's V1 sync trainer only (got trainer.use_v1="
            f"{config.trainer.get('use_v1', True)}, trainer.v1.trainer_mode={mode}); set trainer.use_v1=true "
            "trainer.v1.trainer_mode=sync"
        )
    try:
        dipo_config_from_algorithm(algo)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"algorithm.dipo: {exc}") from exc


def _instantiate(node: DictConfig, where: str, drop: tuple[str, ...] = ()) -> Any:
    if drop:
        node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
        with open_dict(node):
            for key in drop:
                node.pop(key, None)
    try:
        return omega_conf_to_dataclass(node)
    except Exception as exc:  # hydra wraps the dataclass error; keep the section name in front
        raise ConfigError(f"{where}: {exc}") from exc


def _check_reward_manager(config: DictConfig) -> None:
    # verl 0.9.1 keeps `reward` a DictConfig (RewardManagerConfig.__post_init__ cannot run as a dataclass),
    # so check what that __post_init__ would have checked.
    manager = config.reward.reward_manager
    if manager.source == "register":
        if manager.name not in REWARD_MANAGER:
            raise ConfigError(
                f"reward.reward_manager.name={manager.name!r} is not a registered reward manager; "
                f"use one of {sorted(REWARD_MANAGER)}"
            )
    elif manager.source == "importlib" and not manager.get("module", {}).get("path"):
        raise ConfigError("reward.reward_manager.source=importlib needs reward.reward_manager.module.path")
    kwargs = config.reward.get("reward_kwargs", None) or {}
    overlong = kwargs.get("overlong_buffer_cfg", None)
    if overlong is not None and overlong.get("enable", False):
        max_len = kwargs.get("max_resp_len", None)
        if max_len is None or max_len < overlong.len or overlong.len <= 0:
            raise ConfigError(
                "reward.reward_kwargs.overlong_buffer_cfg is enabled: set reward.reward_kwargs.max_resp_len "
                f"(= data.max_response_length) >= overlong_buffer_cfg.len > 0 (got max_resp_len={max_len}, "
                f"len={overlong.len})"
            )
        if max_len != config.data.max_response_length:
            raise ConfigError(
                f"reward.reward_kwargs.max_resp_len={max_len} differs from data.max_response_length="
                f"{config.data.max_response_length}; the overlong penalty would start at the wrong length"
            )
        if manager.name != "dapo":
            raise ConfigError("overlong_buffer_cfg is read by the 'dapo' reward manager only; set reward.reward_manager.name=dapo")


def _check_task_environments(files: list[str], where: str, max_rows: int = 2000) -> None:
    """Every environment the rows of an agent-loop parquet name must load (else every episode fails)."""
    names: dict[str, str] = {}
    for path in files:
        if "://" in path or not path.endswith(".parquet"):
            continue
        table = pq.read_table(os.path.expanduser(path), columns=["extra_info"]).slice(0, max_rows)
        for row, info in enumerate(table.column("extra_info").to_pylist()):
            info = info or {}
            wanted = [info["env"]] if info.get("env") else list(json.loads(info.get("task") or "{}").get("envs") or [])
            for name in wanted:
                names.setdefault(name, f"{path} row {row}")
    for name, first in names.items():
        try:
            load_env(name)
        except Exception as exc:  # unknown name, broken schema file, backend import error
            near = difflib.get_close_matches(name, list_envs(), n=2)
            hint = f" (did you mean {' or '.join(near)}?)" if near else ""
            raise ConfigError(f"{where}: {first} names environment {name!r}, which does not load{hint}: {exc}") from exc


def validate_training_config(config: DictConfig, *, check_files: bool = False) -> list[str]:
    """Validate everything that can be validated without GPUs; return warnings worth printing.

    ``check_files`` also requires the data files to exist (off for configs written for a cluster path).
    """
    problems = value_problems(config)  # first: verl's own checks would crash on a string where a number goes
    problems += batch_problems(config) if not problems else []
    if problems:
        raise ConfigError("\nerror: ".join(problems))
    notes: list[str] = []
    check_dipo_settings(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Disabled critic as adv_estimator != gae"
        use_critic = need_critic(config)
        use_ref = need_reference_policy(config)
    try:
        validate_config(config=config, use_reference_policy=use_ref, use_critic=use_critic)
    except AssertionError as exc:
        raise ConfigError(f"verl validate_config: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"verl validate_config: {exc}") from exc
    except Exception as exc:  # e.g. hydra InstantiationException from the actor dataclass
        raise ConfigError(f"verl validate_config: {exc}") from exc
    _instantiate(config.actor_rollout_ref.rollout, "actor_rollout_ref.rollout")
    _check_reward_manager(config)
    _instantiate(config.algorithm, "algorithm", drop=("dipo",))
    if use_critic:
        _instantiate(config.critic, "critic")

    if config.get("dipo_agent", None) is not None:
        try:
            runner_config_from(config)
        except TaskRowError as exc:
            raise ConfigError(str(exc)) from exc

    reward_fn = config.reward.get("custom_reward_function", {}) or {}
    if reward_fn.get("path"):
        try:
            load_extern_object(reward_fn.path, reward_fn.name)
        except Exception as exc:
            raise ConfigError(
                f"reward.custom_reward_function: cannot load {reward_fn.name!r} from {reward_fn.path!r} ({exc})"
            ) from exc
    legacy = config.get("custom_reward_function", None)
    if legacy is not None and legacy.get("path"):
        raise ConfigError(
            "custom_reward_function.path is a legacy top-level key that verl 0.9.1's main_ppo ignores; "
            "move it to reward.custom_reward_function.path"
        )
    for key in ("train_files", "val_files"):
        files = config.data.get(key)
        files = [files] if isinstance(files, str) else list(files or [])
        # remote URIs (hdfs://, s3://) are fetched by verl itself; only local paths can be checked here
        missing = [f for f in files if "://" not in f and not os.path.exists(os.path.expanduser(f))]
        if missing:
            msg = (f"data.{key}: not found on this machine: {missing}; run `dipo data prepare ...` first (or pass "
                   "--allow-missing-data to validate a config whose data lives on the cluster)")
            if check_files:
                raise ConfigError(msg)
            notes.append(msg)
        elif config.get("dipo_agent", None) is not None:
            _check_task_environments(files, f"data.{key}")
    model_path = config.actor_rollout_ref.model.path
    if not pathlib.Path(os.path.expanduser(str(model_path))).exists():
        notes.append(f"actor_rollout_ref.model.path={model_path}: not a local folder; verl will download it on the cluster")
    return notes
