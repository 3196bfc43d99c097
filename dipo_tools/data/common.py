"""Reading source records and writing verl-ready parquet files.

verl's ``RLHFDataset`` reads parquet with these columns: ``data_source`` (routes the reward function),
``prompt`` (chat messages), ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth": str}``),
``extra_info`` (a dict) and optionally ``agent_name`` (which agent loop runs the row). Every writer in
this package goes through :func:`write_verl_parquet`, which checks those columns before writing.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Iterable

import pandas as pd

REQUIRED_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")


class DataPrepError(ValueError):
    """Bad input to a data preparation step; the message names the file, the field and the fix."""


def read_records(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """Load a local ``.json`` (a list, or ``{"data": [...]}``), ``.jsonl`` or ``.parquet`` file as dicts."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DataPrepError(f"{path}: file not found; pass an existing .json, .jsonl or .parquet path")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return [_to_python(r) for r in pd.read_parquet(path).to_dict(orient="records")]
    if suffix == ".jsonl":
        records = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataPrepError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or remove that line") from exc
        return records
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataPrepError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataPrepError(f"{path}: expected a JSON list of records (or {{'data': [...]}}), got {type(data).__name__}")
        return data
    raise DataPrepError(f"{path}: unsupported extension {suffix!r}; use .json, .jsonl or .parquet")


def _to_python(value: Any) -> Any:
    """numpy arrays / scalars from ``pd.read_parquet`` back to plain lists and numbers."""
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _to_python(value.tolist())
    if isinstance(value, list):
        return [_to_python(v) for v in value]
    return value


def check_row(row: dict[str, Any], where: str) -> None:
    """Raise :class:`DataPrepError` unless ``row`` has verl's required columns in the right shape."""
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise DataPrepError(f"{where}: missing field(s) {missing}; every row needs {list(REQUIRED_COLUMNS)}")
    prompt = row["prompt"]
    if not isinstance(prompt, list) or not prompt or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in prompt
    ):
        raise DataPrepError(f"{where}: field 'prompt' must be a non-empty list of {{'role','content'}} messages")
    rm = row["reward_model"]
    if not isinstance(rm, dict) or "ground_truth" not in rm:
        raise DataPrepError(f"{where}: field 'reward_model' must be a dict with 'ground_truth'")
    if not isinstance(rm["ground_truth"], str):
        raise DataPrepError(f"{where}: field 'reward_model.ground_truth' must be a string (JSON-encode structures)")
    if not isinstance(row["extra_info"], dict):
        raise DataPrepError(f"{where}: field 'extra_info' must be a dict")


def write_verl_parquet(rows: Iterable[dict[str, Any]], out: str | pathlib.Path) -> pathlib.Path:
    """Validate and write rows; returns the written path. Creates parent folders."""
    rows = list(rows)
    out = pathlib.Path(out)
    if not rows:
        raise DataPrepError(f"{out}: nothing to write (0 rows); check the input file and filters")
    for i, row in enumerate(rows):
        check_row(row, f"{out} row {i}")
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(out, index=False)
    return out
