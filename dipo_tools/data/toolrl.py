"""ToolRL rlla-4k → verl parquet (the single-step tool-call track).

Accepts either the raw release (``rlla_rl.json``: a list of ``{instruction, input, output}``, where
``instruction`` is the system prompt listing the tools, ``input`` the dialogue history and ``output`` the
reference answer with ``<think>``/``<tool_call>``/``<response>`` tags) or an already converted parquet
(columns ``prompt``/``reward_model``/``extra_info``, e.g. ToolRL's ``test.parquet``). Rows are scored by
``reward.compute_score`` through verl's reward loop, so they use verl's built-in ``single_turn_agent``.
"""
from __future__ import annotations

import pathlib
import random
from typing import Any

from tqdm import tqdm

from dipo_tools.data.common import DataPrepError, read_records, write_verl_parquet

#: ``data_source`` our reward router sends to the ToolRL scorer (ToolRL's own name for the data).
TOOLRL_DATA_SOURCE = "rlla"
SINGLE_TURN_AGENT = "single_turn_agent"


def toolrl_row(record: dict[str, Any], index: int, split: str, where: str,
               data_source: str = TOOLRL_DATA_SOURCE) -> dict[str, Any]:
    """One rlla record (raw or converted) as a verl row."""
    if "instruction" in record and "output" in record:  # raw release
        for key in ("instruction", "input", "output"):
            if not isinstance(record.get(key), str):
                raise DataPrepError(f"{where}: field {key!r} must be a string in a raw rlla record")
        prompt = [{"role": "system", "content": record["instruction"]},
                  {"role": "user", "content": record["input"]}]
        ground_truth = record["output"]
        extra = {"instruction": record["instruction"], "input": record["input"]}
    elif "prompt" in record and "reward_model" in record:  # converted parquet
        prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in record["prompt"]]
        rm = record["reward_model"]
        if not isinstance(rm, dict) or not isinstance(rm.get("ground_truth"), str):
            raise DataPrepError(f"{where}: field 'reward_model.ground_truth' must be a string")
        ground_truth = rm["ground_truth"]
        extra = {k: v for k, v in (record.get("extra_info") or {}).items() if k in ("instruction", "input")}
    else:
        raise DataPrepError(
            f"{where}: unrecognised rlla record (keys {sorted(record)}); expected raw "
            "{instruction, input, output} or converted {prompt, reward_model, extra_info}"
        )
    extra.update({"index": index, "split": split})
    return {
        "data_source": data_source,
        "prompt": prompt,
        "ability": "tool_call",
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": extra,
        "agent_name": SINGLE_TURN_AGENT,
    }


def prepare_toolrl(src: str | pathlib.Path, out_dir: str | pathlib.Path, *, test_fraction: float = 0.0,
                   seed: int = 31415, data_source: str = TOOLRL_DATA_SOURCE,
                   limit: int | None = None, stats: dict | None = None) -> dict[str, pathlib.Path]:
    """Convert ``src`` into ``out_dir/train.parquet`` (and ``test.parquet`` when ``test_fraction > 0``).

    ``test_fraction`` holds out the last share of a seeded shuffle (ToolRL used 2% with seed 31415).
    With ``test_fraction == 0`` everything goes to ``train.parquet`` — use this for an already split file.
    ``stats`` (if given) receives ``read``, ``written`` per split and ``dropped`` by reason.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise DataPrepError(f"test_fraction={test_fraction}: must be in [0, 1)")
    records = read_records(src)
    n_read = len(records)
    if limit is not None:
        records = records[:limit]
    order = list(range(len(records)))
    if test_fraction > 0:
        random.Random(seed).shuffle(order)
    n_test = int(round(len(order) * test_fraction))
    splits = {"train": order[: len(order) - n_test], "test": order[len(order) - n_test:]}
    written = {}
    for split, idxs in splits.items():
        if not idxs:
            continue
        rows = [toolrl_row(records[i], j, split, f"{src} record {i}", data_source)
                for j, i in enumerate(tqdm(idxs, desc=f"rlla {split}", disable=len(idxs) < 500))]
        written[split] = write_verl_parquet(rows, pathlib.Path(out_dir) / f"{split}.parquet")
    if stats is not None:
        stats.update(read=n_read, written={k: len(v) for k, v in splits.items() if v},
                     dropped={"beyond --limit": n_read - len(records)})
    return written
