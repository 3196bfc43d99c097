"""BFCL V3 categories, data loading and provenance, read from the installed ``bfcl-eval`` wheel.

The wheel (2026.3.23) names its files and categories V4-style (``simple_python`` ...). Reports use the
V3 names, because the V3 overall formula is what users compare against; this module is the one place
that maps between the two.
"""
from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from dataclasses import dataclass
from typing import Any

from tool_envs.bfcl import ensure_bfcl_root  # noqa: F401 - re-exported for the eval modules


@dataclass(frozen=True)
class Category:
    """One V3 scoring category.

    ``v3``: name in the V3 leaderboard / reports; ``data``: name of the installed data files;
    ``group``: ``non_live`` | ``live`` | ``multi_turn``; ``kind``: ``ast`` | ``irrelevance`` |
    ``relevance`` | ``multi_turn``; ``language``: python | java | javascript (AST type rules).
    """

    v3: str
    data: str
    group: str
    kind: str
    language: str = "python"


CATEGORIES: tuple[Category, ...] = (
    Category("simple", "simple_python", "non_live", "ast"),
    Category("java", "simple_java", "non_live", "ast", "java"),
    Category("javascript", "simple_javascript", "non_live", "ast", "javascript"),
    Category("multiple", "multiple", "non_live", "ast"),
    Category("parallel", "parallel", "non_live", "ast"),
    Category("parallel_multiple", "parallel_multiple", "non_live", "ast"),
    Category("irrelevance", "irrelevance", "non_live", "irrelevance"),
    Category("live_simple", "live_simple", "live", "ast"),
    Category("live_multiple", "live_multiple", "live", "ast"),
    Category("live_parallel", "live_parallel", "live", "ast"),
    Category("live_parallel_multiple", "live_parallel_multiple", "live", "ast"),
    Category("live_irrelevance", "live_irrelevance", "live", "irrelevance"),
    Category("live_relevance", "live_relevance", "live", "relevance"),
    Category("multi_turn_base", "multi_turn_base", "multi_turn", "multi_turn"),
    Category("multi_turn_miss_func", "multi_turn_miss_func", "multi_turn", "multi_turn"),
    Category("multi_turn_miss_param", "multi_turn_miss_param", "multi_turn", "multi_turn"),
    Category("multi_turn_long_context", "multi_turn_long_context", "multi_turn", "multi_turn"),
)
BY_NAME: dict[str, Category] = {c.v3: c for c in CATEGORIES} | {c.data: c for c in CATEGORIES}
GROUPS = {
    "all": [c.v3 for c in CATEGORIES],
    "non_live": [c.v3 for c in CATEGORIES if c.group == "non_live"],
    "live": [c.v3 for c in CATEGORIES if c.group == "live"],
    "multi_turn": [c.v3 for c in CATEGORIES if c.group == "multi_turn"],
    "single_turn": [c.v3 for c in CATEGORIES if c.group != "multi_turn"],
    "ast": [c.v3 for c in CATEGORIES if c.kind == "ast"],
}


def resolve_categories(names: str | list[str] | None) -> list[Category]:
    """Accept V3 names, installed (V4-style) names and the groups ``all``, ``non_live``, ``live``,
    ``multi_turn``, ``single_turn``, ``ast``; comma-separated strings are split. Order follows CATEGORIES."""
    if names is None:
        names = ["all"]
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted: set[str] = set()
    for raw in names:
        n = raw.strip()
        if n in GROUPS:
            wanted.update(GROUPS[n])
        elif n in BY_NAME:
            wanted.add(BY_NAME[n].v3)
        else:
            raise ValueError(
                f"unknown BFCL category {n!r}; use one of {sorted(GROUPS)} or a category name: "
                f"{', '.join(c.v3 for c in CATEGORIES)}"
            )
    return [c for c in CATEGORIES if c.v3 in wanted]


@functools.lru_cache(maxsize=None)
def _load(category_data_name: str, hints: bool) -> tuple[list[dict], list[dict] | None]:
    ensure_bfcl_root()
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    cat = BY_NAME[category_data_name]
    entries = load_dataset_entry(cat.data, include_prereq=False, include_language_specific_hint=hints)
    answers = None if cat.kind in ("irrelevance", "relevance") else load_ground_truth_entry(cat.data)
    if answers is not None and [e["id"] for e in entries] != [a["id"] for a in answers]:
        # bfcl aligns by index; make sure that assumption holds for the installed data.
        raise ValueError(f"bfcl-eval data for {cat.data}: question and possible_answer ids are not aligned")
    return entries, answers


def load_category(category: Category | str, *, hints: bool = True) -> tuple[list[dict], list[dict] | None]:
    """Entries (with ``function`` docs; multi-turn ones with ``missed_function`` docs per turn) and the
    aligned possible answers (None for relevance/irrelevance).

    The lists are cached and shared: treat them as read-only (copy an entry before changing it).
    ``hints`` adds bfcl's language notes to the docs (what ``bfcl generate`` shows a model)."""
    cat = category if isinstance(category, Category) else BY_NAME[category]
    entries, answers = _load(cat.data, hints)
    return list(entries), (list(answers) if answers is not None else None)


def category_size(category: Category | str) -> int:
    return len(load_category(category, hints=False)[0])


def bfcl_version() -> str:
    from importlib.metadata import version

    return version("bfcl-eval")


@functools.lru_cache(maxsize=None)
def data_revision() -> str:
    """sha256 (first 16 hex) over the installed question + possible-answer files of the V3 categories:
    the multi-turn data changed a lot after the V3 era (bfcl.md §2.5), so reports pin what was scored."""
    ensure_bfcl_root()
    from bfcl_eval.constants.eval_config import POSSIBLE_ANSWER_PATH, PROMPT_PATH

    h = hashlib.sha256()
    for cat in CATEGORIES:
        for base in (PROMPT_PATH, POSSIBLE_ANSWER_PATH):
            p = pathlib.Path(base) / f"BFCL_v4_{cat.data}.json"
            if p.exists():
                h.update(p.name.encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def provenance() -> dict[str, Any]:
    return {"bfcl_eval_version": bfcl_version(), "data_revision": data_revision()}


def to_jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
