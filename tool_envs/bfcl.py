"""BFCL V3 multi-turn support: built-in environment schemas, entry → Task conversion, GT replay.

* ``python -m tool_envs.bfcl generate-schemas`` regenerates ``tool_envs/envs/<bfcl env>/env.json`` from
  bfcl-eval's ``multi_turn_func_doc/*.json`` (the committed files are its output).
* :func:`load_bfcl_tasks` converts the installed bfcl-eval multi-turn entries (EVALUATION ONLY; training
  on them contaminates BFCL scores, see :mod:`tool_envs.bfcl_train`).
* :func:`replay_ground_truth` executes a task's ground truth through *our* executor (never bfcl-eval's
  ``eval``-based one). BFCL's per-turn verdict on top of it is ``reward.multi_turn.check_turns``.

Set ``BFCL_PROJECT_ROOT`` before importing bfcl_eval (it creates folders there at import time); this
module defaults it to ``~/.cache/dipo_tools/bfcl`` when unset (:func:`ensure_bfcl_root`).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import os
import pathlib
from importlib.metadata import version
from typing import Any, Sequence

from tool_envs.hooks import EnvHook
from tool_envs.parsing import parse_tool_calls
from tool_envs.registry import BUILTIN_DIR, env_for_task
from tool_envs.bfcl_schema import bfcl_doc_to_tool
from tool_envs.schema import spec_from_mapping
from tool_envs.tasks import Task, save_tasks
from tool_envs.types import ToolCall, ToolResult



def ensure_bfcl_root() -> str:
    """bfcl-eval mkdirs ``result/``, ``score/`` under ``$BFCL_PROJECT_ROOT`` at import time (site-packages
    when unset), so give it a user-owned default before the first import."""
    root = os.environ.get("BFCL_PROJECT_ROOT")
    if not root:
        root = str(pathlib.Path.home() / ".cache" / "dipo_tools" / "bfcl")
        os.environ["BFCL_PROJECT_ROOT"] = root
    pathlib.Path(root).mkdir(parents=True, exist_ok=True)
    return root


ensure_bfcl_root()

MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
#: BFCL's fixed user message for the turn that reveals held-out functions (FC mode).
MISSED_FUNCTION_MESSAGE = "I have updated some more functions you can choose from. What about now?"
#: Limits of the generated BFCL environments: 20 steps per turn as BFCL's MAXIMUM_STEP_LIMIT, and no
#: output truncation in practice so results stay byte-identical to BFCL's.
BFCL_LIMITS = {"max_turns": 20, "max_calls_per_turn": 64, "call_timeout_s": 10.0, "max_output_chars": 10_000_000}


@functools.lru_cache(maxsize=1)
def _backend_config() -> tuple[dict, dict, list]:
    # bfcl-eval is imported on first use: its import creates folders under $BFCL_PROJECT_ROOT (set above).
    from bfcl_eval.constants import executable_backend_config as c

    return dict(c.CLASS_FILE_PATH_MAPPING), dict(c.MULTI_TURN_FUNC_DOC_FILE_MAPPING), list(c.STATELESS_CLASSES)


#: The 8 V3 multi-turn backend classes.
BFCL_V3_CLASSES = ("GorillaFileSystem", "MathAPI", "MessageAPI", "TwitterAPI", "TicketAPI", "TradingBot", "TravelAPI", "VehicleControlAPI")


def bfcl_env_name(class_name: str) -> str:
    """``GorillaFileSystem`` → ``gorilla_file_system`` (the stem of its bfcl-eval doc file)."""
    return _backend_config()[1][class_name].rsplit(".", 1)[0]


def bfcl_data_dir() -> pathlib.Path:
    import bfcl_eval  # on first use, see _backend_config

    return pathlib.Path(bfcl_eval.__file__).parent / "data"


def _read_jsonl(path: pathlib.Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def bfcl_schema_mapping(class_name: str) -> dict:
    """The schema-file mapping of one BFCL backend, built from bfcl-eval's function docs."""
    modules, docs, stateless = _backend_config()
    doc_path = bfcl_data_dir() / "multi_turn_func_doc" / docs[class_name]
    tools = [bfcl_doc_to_tool(fn) for fn in _read_jsonl(doc_path)]
    cls = getattr(importlib.import_module(modules[class_name]), class_name)
    backend: dict[str, Any] = {"class": f"{modules[class_name]}.{class_name}"}
    if class_name in stateless:
        backend["stateless"] = True
    else:
        backend["init_method"] = "_load_scenario"
        backend["init_options"] = ["long_context"]
    description = getattr(cls(), "_api_description", "") or f"BFCL backend {class_name}"
    return {
        "name": bfcl_env_name(class_name),
        "description": description,
        "version": "bfcl-eval " + _bfcl_version(),
        # BFCL passes arguments to the backend unchecked; checking them here would change verdicts
        # (e.g. the ground truth calls close_ticket(ticket_id='ticket_001') against an integer doc type).
        "argument_checking": "off",
        # Registered explicitly: the folder's generator (fresh tasks, never BFCL test entries).
        "generator": f"tool_envs.envs.{bfcl_env_name(class_name)}.generate:generate_tasks",
        "hook": "tool_envs.bfcl:BFCL_HOOK",
        "backend": backend,
        "limits": dict(BFCL_LIMITS),
        "tools": tools,
    }


def _bfcl_version() -> str:
    return version("bfcl-eval")


def generate_schema_files(out_dir: pathlib.Path = BUILTIN_DIR) -> list[pathlib.Path]:
    """Write ``<out_dir>/<env>/env.json`` for the 8 backends (validated before writing)."""
    written = []
    for cls in BFCL_V3_CLASSES:
        mapping = bfcl_schema_mapping(cls)
        spec_from_mapping(mapping, source=f"<generated {cls}>")
        d = out_dir / mapping["name"]
        d.mkdir(parents=True, exist_ok=True)
        p = d / "env.json"
        p.write_text(json.dumps(mapping, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(p)
    return written


# --- entries → tasks ---------------------------------------------------------------------------------


def load_bfcl_entries(category: str) -> list[tuple[dict, dict]]:
    """``[(question entry, possible-answer entry)]`` of one multi-turn category, from the installed data."""
    if category not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; choose from {MULTI_TURN_CATEGORIES}")
    data = bfcl_data_dir()
    stem = f"BFCL_v4_{category}.json"
    questions = _read_jsonl(data / stem)
    answers = {a["id"]: a for a in _read_jsonl(data / "possible_answer" / stem)}
    return [(q, answers[q["id"]]) for q in questions]


@functools.lru_cache(maxsize=None)
def _signatures(classes: tuple[str, ...]) -> dict[str, list[str]]:
    """Positional parameter names of every public method, from the real backend signatures."""
    env = env_for_task({"envs": list(classes)})
    out = {}
    for spec in env.specs:
        cls = spec.backend.load_class()
        for name in spec.tool_names:
            params = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
            out[name] = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return out


def parse_gt_turn(call_strings: Sequence[str], classes: Sequence[str]) -> list[ToolCall]:
    """Parse one turn of BFCL ground-truth call strings (``ast`` only) with positional args named."""
    sigs = _signatures(tuple(classes))
    calls: list[ToolCall] = []
    for s in call_strings:
        calls.extend(parse_tool_calls(s, "python", signatures=sigs))
    return calls


def bfcl_entry_to_task(entry: dict, answer: dict) -> Task:
    """Convert one BFCL multi-turn entry (+ its possible answer) to a :class:`Task`.

    The empty question of a miss_func reveal turn is filled with BFCL's fixed message; ``missed_function``
    becomes ``missed_functions`` (names hidden until that turn).
    """
    classes = list(entry["involved_classes"])
    category = entry["id"].rsplit("_", 1)[0]
    missed = {int(k): [f if isinstance(f, str) else f["name"] for f in v] for k, v in (entry.get("missed_function") or {}).items()}
    turns = []
    for ti, turn in enumerate(entry["question"]):
        if not turn and ti in missed:
            turn = [{"role": "user", "content": MISSED_FUNCTION_MESSAGE}]
        turns.append([dict(m) for m in turn])
    gt = [parse_gt_turn(t, classes) for t in answer["ground_truth"]]
    meta = {"bfcl_category": category, "gt_strings": answer["ground_truth"], "involved_classes": classes}
    if entry.get("excluded_function"):
        meta["excluded_function"] = entry["excluded_function"]
    return Task(
        id=entry["id"],
        envs=[bfcl_env_name(c) for c in classes],
        # BFCL instantiates only the involved classes; a few entries carry configs of others (ignored there too)
        initial_state={c: entry["initial_config"].get(c, {}) for c in entry["initial_config"] if c in classes},
        turns=turns,
        ground_truth={"calls": gt, "final_state": None},
        missed_functions=missed,
        long_context="long_context" in category or "composite" in category,
        source=f"bfcl_v4:{category}",
        metadata=meta,
    )


def load_bfcl_tasks(categories: Sequence[str] = MULTI_TURN_CATEGORIES) -> list[Task]:
    """All multi-turn entries of the given categories as tasks (evaluation only)."""
    return [bfcl_entry_to_task(q, a) for cat in categories for q, a in load_bfcl_entries(cat)]


# --- checking ----------------------------------------------------------------------------------------


def replay_ground_truth(task: Task, isolation: str | None = None) -> tuple[Any, list[list[ToolResult]]]:
    """Execute the ground-truth calls in a fresh episode, revealing held-out tools at their turn.

    Returns ``(episode, results per turn)``. ``isolation`` as in ``ToolEnv.new_episode``.
    """
    ep = env_for_task(task).new_episode(task, isolation=isolation)
    out = []
    for t, calls in enumerate(task.gt_calls or []):
        ep.reveal(task.missed_functions.get(t, []))
        out.append(ep.execute(list(calls)))
    return ep, out


class BfclHook(EnvHook):
    """The BFCL environments' hook: bfcl-eval's own ``state_checker`` / ``response_checker`` (the verdict
    must be BFCL's, byte for byte) and BFCL's entry format (``question`` + ``involved_classes``)."""

    name = "bfcl"
    reveal_message = MISSED_FUNCTION_MESSAGE  # BFCL's fixed sentence, as its own harness sends it

    def state_check(self, model_backends, gt_backends) -> dict:
        # Imported here: importing bfcl-eval creates folders under $BFCL_PROJECT_ROOT and takes about a
        # second, which only BFCL episodes should pay.
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import state_checker

        return state_checker(model_backends, gt_backends)

    def response_check(self, model_results, gt_results, turn: int) -> dict:
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import response_checker  # see state_check

        return response_checker(list(model_results), list(gt_results), turn)

    def task_from_entry(self, entry) -> Task | None:
        """A BFCL multi-turn entry that carries its ``ground_truth`` as a Task (``None`` for other mappings)."""
        if "involved_classes" not in entry or "question" not in entry:
            return None
        if "ground_truth" not in entry:
            raise ValueError(
                f"BFCL entry {entry.get('id')!r} has no ground_truth; merge its possible-answer entry "
                "(entry['ground_truth'] = answer['ground_truth']) or pass a tool_envs Task"
            )
        return bfcl_entry_to_task(dict(entry), {"ground_truth": entry["ground_truth"]})


#: Named by every BFCL schema file (``hook: tool_envs.bfcl:BFCL_HOOK``).
BFCL_HOOK = BfclHook()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tool_envs.bfcl", description="BFCL helpers for tool_envs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate-schemas", help="regenerate tool_envs/envs/<bfcl env>/env.json from bfcl-eval's function docs")
    g.add_argument("--out", type=pathlib.Path, default=BUILTIN_DIR)
    e = sub.add_parser("export-tasks", help="write BFCL multi-turn entries as a JSONL task file (evaluation only)")
    e.add_argument("out", type=pathlib.Path)
    e.add_argument("--categories", nargs="+", default=list(MULTI_TURN_CATEGORIES))
    args = ap.parse_args(argv)
    if args.cmd == "generate-schemas":
        for p in generate_schema_files(args.out):
            print(p)
    else:
        n = save_tasks(load_bfcl_tasks(args.categories), args.out)
        print(f"wrote {n} tasks to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
