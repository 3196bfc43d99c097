"""Checks verl itself does not make before a run: value types and ranges, unknown keys, batch arithmetic.

verl's configs are OmegaConf trees whose leaves are only type-checked, if at all, when a worker builds its
dataclass on the cluster: ``optim.lr=abc`` or ``rollout.n=-3`` pass composition and fail (or silently
misbehave) minutes into a GPU job. These functions compare a composed config with verl's own defaults
(the type of each default value is the expected type) and a table of ranges, and return one-line messages
that name the key and the fix. They need no GPU, Ray or network.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import math
import re
import types
import typing
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from dipo_tools.config_utils import ConfigError
from dipo_tools.verl_ext.compose import compose_base

#: keys whose value must lie in a range: (low, high, inclusive-low); None = unbounded. An integer low bound
#: marks a count (the value must be an integer)
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "actor_rollout_ref.actor.optim.lr": (0.0, None, False),
    "actor_rollout_ref.rollout.n": (1, None, True),
    "actor_rollout_ref.rollout.temperature": (0.0, None, True),
    "actor_rollout_ref.rollout.top_p": (0.0, 1.0, False),
    "actor_rollout_ref.actor.ppo_mini_batch_size": (1, None, True),
    "actor_rollout_ref.actor.ppo_epochs": (1, None, True),
    "actor_rollout_ref.actor.clip_ratio_low": (0.0, None, False),
    "actor_rollout_ref.actor.clip_ratio_high": (0.0, None, False),
    "actor_rollout_ref.actor.clip_ratio_c": (1.0, None, False),
    "actor_rollout_ref.actor.grad_clip": (0.0, None, False),
    "actor_rollout_ref.rollout.gpu_memory_utilization": (0.0, 1.0, False),
    "actor_rollout_ref.rollout.tensor_model_parallel_size": (1, None, True),
    "data.train_batch_size": (1, None, True),
    "data.max_prompt_length": (1, None, True),
    "data.max_response_length": (1, None, True),
    "trainer.n_gpus_per_node": (1, None, True),
    "trainer.nnodes": (1, None, True),
    "trainer.total_epochs": (1, None, True),
    "algorithm.dipo.alpha": (0.0, None, True),
}

#: containers users may extend with keys verl does not declare (verl reads them as free-form kwargs)
OPEN_CONTAINERS = (
    "ray_kwargs", "algorithm.dipo", "dipo_agent", "smoke", "reward.reward_kwargs", "data.apply_chat_template_kwargs",
    "actor_rollout_ref.model.override_config", "actor_rollout_ref.model.custom_chat_template",
    "actor_rollout_ref.rollout.engine_kwargs", "actor_rollout_ref.rollout.custom", "global_profiler",
)


@functools.lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    """Leaf path -> default value of our base config (verl's ppo_trainer + DiPO defaults)."""
    return dict(_leaves(OmegaConf.to_container(compose_base(None, []), resolve=False)))


@functools.lru_cache(maxsize=1)
def _default_containers() -> frozenset[str]:
    return frozenset(_containers(OmegaConf.to_container(compose_base(None, []), resolve=False)))


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _containers(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        yield prefix
        for key, value in node.items():
            yield from _containers(value, f"{prefix}.{key}" if prefix else str(key))


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return None


def _annotation_kind(annotation: Any) -> str | None:
    """``integer`` / ``number`` / ``boolean`` for a dataclass field annotation (Optional allowed), else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if len(args) != 1:
            return None
        annotation = args[0]
    return {bool: "boolean", int: "integer", float: "number"}.get(annotation)


def _dataclass_kinds(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Expected kinds of leaves under verl's dataclass-backed nodes (``_target_``), from field annotations."""
    if not isinstance(node, dict):
        return
    target = node.get("_target_")
    if isinstance(target, str) and "." in target:
        module, _, name = target.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
            hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        except Exception:  # an unimportable target is verl's own error to report
            hints = {}
        for field_name, annotation in hints.items():
            kind = _annotation_kind(annotation)
            if kind and field_name in node:
                yield (f"{prefix}.{field_name}" if prefix else field_name), kind
    for key, value in node.items():
        yield from _dataclass_kinds(value, f"{prefix}.{key}" if prefix else str(key))


def _is_open(path: str) -> bool:
    return any(path == c or path.startswith(c + ".") for c in OPEN_CONTAINERS)


def close_matches(path: str, candidates: list[str]) -> str:
    """`` (did you mean X?)`` for the nearest sibling keys of ``path``, or ``""``."""
    parent, _, leaf = path.rpartition(".")
    siblings = sorted({c.rpartition(".")[2] for c in candidates if c.rpartition(".")[0] == parent})
    near = difflib.get_close_matches(leaf, siblings, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(f'{parent}.{n}' if parent else n for n in near)}?)" if near else ""


def value_problems(config: DictConfig) -> list[str]:
    """Wrong types (a string where verl expects a number), out-of-range values and unknown keys."""
    problems: list[str] = []
    defaults = _defaults()
    containers = _default_containers()
    resolved = OmegaConf.to_container(config, resolve=True)
    declared = dict(_dataclass_kinds(resolved))
    for path, value in _leaves(resolved):
        if path in defaults:
            # the dataclass annotation when verl has one; else the default's type, where an integer default
            # may also hold a float (verl writes 1 for top_p)
            count = path in RANGES and isinstance(RANGES[path][0], int)
            want = declared.get(path) or ("integer" if count else None) or \
                ("number" if _kind(defaults[path]) == "integer" else _kind(defaults[path]))
            got = _kind(value)
            if want and value is not None and not (got == want or (want == "number" and got == "integer")):
                problems.append(f"{path}={value!r} must be {'an' if want == 'integer' else 'a'} {want} "
                                f"(verl's default is {defaults[path]!r})")
                continue
        elif not _is_open(path):
            parent = path.rpartition(".")[0]
            # a new key inside a section verl declares is a typo (verl ignores or rejects it on the cluster)
            if parent in containers and not any(d.startswith(path + ".") for d in defaults):
                problems.append(f"{path} is not a verl or dipo setting{close_matches(path, list(defaults))}; "
                                "remove it or fix its name")
                continue
        if path in RANGES and _kind(value) in ("integer", "number"):
            low, high, inclusive = RANGES[path]
            bad = (low is not None and (value < low if inclusive else value <= low)) or \
                  (high is not None and value > high) or (isinstance(value, float) and not math.isfinite(value))
            if bad:
                bounds = (f"{'>=' if inclusive else '>'} {low}" if low is not None else "") + \
                         (f"{' and ' if low is not None else ''}<= {high}" if high is not None else "")
                problems.append(f"{path}={value!r} must be {bounds}")
    return problems


def batch_problems(config: DictConfig) -> list[str]:
    """Batch sizes that verl's workers cannot split across data-parallel ranks and mini-batches."""
    problems = []
    actor = config.actor_rollout_ref.actor
    n = int(config.actor_rollout_ref.rollout.n)
    batch, mini = int(config.data.train_batch_size), int(actor.ppo_mini_batch_size)
    if mini > 0 and batch % mini != 0:  # verl skips this under use_dynamic_bsz, then fails mid-step
        problems.append(f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} must divide data.train_batch_size="
                        f"{batch} (both count prompts; verl multiplies each by rollout.n)")
    world = int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes)
    sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = max(1, world // sp)
    if world % sp:
        problems.append(f"trainer.n_gpus_per_node x trainer.nnodes = {world} GPUs is not a multiple of "
                        f"actor_rollout_ref.actor.ulysses_sequence_parallel_size={sp}")
    elif mini > 0 and (mini * n) % dp:
        problems.append(f"a mini-batch of ppo_mini_batch_size x rollout.n = {mini} x {n} = {mini * n} responses "
                        f"cannot be split across {dp} data-parallel GPUs; choose ppo_mini_batch_size so that "
                        f"{dp} divides ppo_mini_batch_size x rollout.n")
    tp = int(config.actor_rollout_ref.rollout.tensor_model_parallel_size)
    if tp > 0 and world % tp:
        problems.append(f"actor_rollout_ref.rollout.tensor_model_parallel_size={tp} must divide the {world} GPUs "
                        "(trainer.n_gpus_per_node x trainer.nnodes)")
    return problems


__all__ = ["RANGES", "OPEN_CONTAINERS", "batch_problems", "close_matches", "value_problems"]


def composition_error(exc: Exception) -> ConfigError:
    """hydra's "Could not override 'KEY'" (a 60-line traceback) as one line with the nearest valid keys."""
    text = str(exc) + " " + str(exc.__cause__ or "")
    match = re.search(r"Could not override '([^']+)'", text)
    if match is None:
        return ConfigError(" ".join(str(exc).split()))
    key = match.group(1)
    return ConfigError(f"{key} is not a verl or dipo setting{close_matches(key, list(_defaults()))}; fix its name, "
                       f"or add a new key on purpose with +{key}=VALUE")
