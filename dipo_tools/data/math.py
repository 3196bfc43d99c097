"""Math datasets → verl parquet: DAPO-Math-17k for training and the eval sets (AIME24/25, AMC23,
MATH500, OlympiadBench) for validation.

Sources are a local file (``.parquet``/``.json``/``.jsonl``) or a Hugging Face hub id (downloaded by
``datasets`` on the machine that prepares data — never at training time). Rows already in verl format
(``prompt`` + ``reward_model``) keep their prompt; plain ``{problem, answer}`` rows get the DAPO prompt
template, so training and evaluation ask for the answer the same way.
"""
from __future__ import annotations

import pathlib
from typing import Any

from tqdm import tqdm

from dipo_tools.data.common import DataPrepError, _to_python, read_records, write_verl_parquet

#: The DAPO-Math-17k instruction (the answer goes on a final ``Answer:`` line).
DAPO_TEMPLATE = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{problem}\n\n"
    'Remember to put your answer on its own line after "Answer:".'
)
QUESTION_KEYS = ("problem", "question", "Problem", "Question", "query")
ANSWER_KEYS = ("answer", "final_answer", "Answer", "ground_truth", "expected_answer")


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` in ``text`` (brace-balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def _answer_of(record: dict[str, Any], where: str) -> str:
    rm = record.get("reward_model")
    if isinstance(rm, dict) and rm.get("ground_truth") is not None:
        return _stringify(rm["ground_truth"])
    for key in ANSWER_KEYS:
        if record.get(key) not in (None, ""):
            return _stringify(record[key])
    if isinstance(record.get("solution"), str) and (boxed := last_boxed(record["solution"])):
        return boxed
    raise DataPrepError(
        f"{where}: no answer found; expected one of {list(ANSWER_KEYS)}, reward_model.ground_truth, "
        "or a 'solution' containing \\boxed{...}"
    )


def _stringify(value: Any) -> str:
    value = _to_python(value)
    if isinstance(value, list):  # OlympiadBench stores a list of final answers
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def math_row(record: dict[str, Any], index: int, *, data_source: str, split: str, where: str,
             template: str = DAPO_TEMPLATE) -> dict[str, Any]:
    """One math record (verl-format or plain problem/answer) as a verl row."""
    answer = _answer_of(record, where)
    prompt = record.get("prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    else:
        problem = next((record[k] for k in QUESTION_KEYS if isinstance(record.get(k), str)), None)
        if problem is None:
            raise DataPrepError(f"{where}: no question found; expected 'prompt' messages or one of {list(QUESTION_KEYS)}")
        messages = [{"role": "user", "content": template.format(problem=problem)}]
    return {
        "data_source": data_source,
        "prompt": messages,
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"index": index, "split": split},
        "agent_name": "single_turn_agent",
    }


def load_math_source(src: str, split: str = "train") -> list[dict[str, Any]]:
    """Local file → records; anything else is treated as a hub id for ``datasets.load_dataset``."""
    if pathlib.Path(src).exists():
        return read_records(src)
    if pathlib.Path(src).suffix in (".json", ".jsonl", ".parquet") or src.startswith((".", "/")):
        raise DataPrepError(f"{src}: file not found (and it does not look like a hub id 'org/name')")
    import datasets  # here: 5.6 s to import (load average 10), needed for hub ids only

    return [dict(r) for r in datasets.load_dataset(src, split=split)]


def prepare_math(src: str, out: str | pathlib.Path, *, data_source: str, split: str = "train",
                 hub_split: str = "train", dedupe: bool = True, limit: int | None = None,
                 template: str = DAPO_TEMPLATE, stats: dict | None = None) -> pathlib.Path:
    """Convert one math source to ``out``. ``dedupe`` drops repeated prompts (DAPO-Math-17k's hub copy
    repeats each of its ~17k problems many times). ``stats`` as in ``prepare_toolrl``."""
    records = load_math_source(src, hub_split)
    rows, seen = [], set()
    duplicates = 0
    for i, record in enumerate(tqdm(records, desc=f"{data_source}", disable=len(records) < 1000)):
        row = math_row(record, len(rows), data_source=data_source, split=split, where=f"{src} record {i}",
                       template=template)
        key = (row["prompt"][-1]["content"], row["reward_model"]["ground_truth"])
        if dedupe and key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if stats is not None:
        stats.update(read=len(records), written={split: len(rows)},
                     dropped={"duplicate prompts": duplicates, "beyond --limit": len(records) - len(rows) - duplicates})
    return write_verl_parquet(rows, out)
