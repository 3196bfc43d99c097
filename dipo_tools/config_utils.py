"""Config helpers shared by every layer (a leaf: imports nothing from this project).

One way to turn user-supplied mappings into the project's config dataclasses, and the one error type for a
configuration problem, whichever engine or file it comes from.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem (a YAML key, an override, a CLI argument), with a message naming the file or
    key and the fix. A ``ValueError``, so callers that catch bad values keep working."""


def dataclass_from_mapping(cls: type[T], values: Any, *, tuple_fields: Iterable[str] = ()) -> T:
    """Build ``cls`` from ``None`` (defaults), an instance, a dict/Mapping or an OmegaConf node.

    Unknown keys are refused with the list of valid ones, so a typo in a YAML file fails before any work.
    Fields named in ``tuple_fields`` are converted from lists (YAML has no tuples).
    """
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if isinstance(values, DictConfig):
        values = OmegaConf.to_container(values, resolve=True)
    values = dict(values)
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {known}")
    for name in tuple_fields:
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    return cls(**values)
