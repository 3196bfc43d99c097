"""Command-line options derived from config dataclasses, so each default and help text is written once.

The eval harnesses' settings live in documented dataclasses (``BFCLEvalConfig``, ``MathEvalConfig``,
``PromptConfig``, ``SamplingConfig``); ``add_dataclass_args`` turns their fields into argparse options (the
default from the field, the help from the ``Attributes:`` docstring entry, the type from the annotation) and
``dataclass_from_args`` reads them back, in the manner of TRL's ``HfArgumentParser``.

Mapping rules: ``snake_case`` becomes ``--kebab-case`` (or the name given in ``rename``); a ``bool`` field
that defaults to True becomes ``--no-<name>``, one that defaults to False a ``--<name>`` switch; a
``list[str]`` field is a comma list (``--ids a,b``) unless it is in ``append`` (repeatable option); ``X |
None`` takes an ``X``; ``list[str] | str`` passes the string on.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_SECTION = re.compile(r"^\s*(Attributes|Parameters|Args):\s*$")


def field_docs(cls: type) -> dict[str, str]:
    """``{field: one-paragraph help}`` from the ``Attributes:``/``Parameters:`` section of ``cls``'s docstring.

    An entry is ``name: text`` with continuation lines indented deeper; ``a / b: text`` documents both.
    """
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    start = next((i + 1 for i, ln in enumerate(lines) if _SECTION.match(ln)), None)
    if start is None:
        return docs
    names: list[str] = []
    indent = None
    for ln in lines[start:]:
        if not ln.strip():
            continue
        depth = len(ln) - len(ln.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        m = re.match(r"^\s*([\w\s/]+?):\s*(.*)$", ln) if depth == indent else None
        if m:
            names = [n.strip() for n in m.group(1).split("/")]
            for n in names:
                docs[n] = m.group(2).strip()
        else:
            for n in names:
                docs[n] = f"{docs[n]} {ln.strip()}".strip()
    return docs


def _base_type(annotation: Any) -> Any:
    """The type an option parses: ``int | None`` -> ``int``; ``list[str] | str`` -> ``str`` (the field takes
    the comma string as it is); ``list[str] | None`` -> ``list[str]``."""
    if type(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return str if str in rest else rest[0]
    return annotation


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, exclude: Collection[str] = (),
                       rename: Mapping[str, str] | None = None, required: Collection[str] = (),
                       choices: Mapping[str, Collection[Any]] | None = None,
                       append: Collection[str] = ()) -> None:
    """Add one option per field of dataclass ``cls`` (but ``exclude`` and nested dataclasses)."""
    rename, choices = dict(rename or {}), dict(choices or {})
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or dataclasses.is_dataclass(hints[f.name]):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kind = _base_type(hints[f.name])
        flag = "--" + rename.get(f.name, f.name.replace("_", "-"))
        help_text = docs.get(f.name, "")
        kw: dict[str, Any] = {"dest": f.name}
        if kind is bool:
            if default:
                flag = "--no-" + rename.get(f.name, f.name.replace("_", "-"))
                kw.update(action="store_false", help=f"do not {f.name.replace('_', ' ')}: {help_text}")
            else:
                kw.update(action="store_true", help=help_text)
            parser.add_argument(flag, default=default, **kw)
            continue
        if typing.get_origin(kind) is list:
            if f.name in append:
                kw.update(action="append", type=str)
            else:
                kw.update(type=_comma_list)
                help_text += " (comma list)"
        else:
            kw["type"] = kind
        if f.name in required:
            kw["required"] = True
        else:
            kw["default"] = None if f.name in append else default
            if default not in (None, "", []) and f.name not in append:
                help_text += f" (default: {default})"
        if f.name in choices:
            kw["choices"] = list(choices[f.name])
        parser.add_argument(flag, help=help_text.replace("%", "%%"), **kw)


def _comma_list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def dataclass_from_args(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """``cls`` built from the options ``add_dataclass_args`` added (those present in ``args``) plus ``values``."""
    own = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
           if f.name not in values and hasattr(args, f.name)}
    return cls(**own, **values)
