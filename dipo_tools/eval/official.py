"""Cross-check with bfcl-eval's own pipeline: ``bfcl generate`` + ``bfcl evaluate`` against a local
OpenAI-compatible server (bfcl.md §5.4), then the V3 overall from its score files.

The model is registered at run time as a bfcl ``ModelConfig`` (``OpenAICompletionsHandler``, FC mode, dots in
tool names mapped to ``_`` as OpenAI requires) inside a child process, so bfcl's module globals, its ``.env``
loading and its executor never touch the calling process. bfcl's generate runs the model's tool calls with
its own ``eval``-based executor: use this path only with a model/server you trust, for cross-checks.

    python -m dipo_tools.eval.official --base-url http://127.0.0.1:8000/v1 --model my-served-name \\
        --categories multi_turn_base,simple --project-root runs/bfcl_official [--ids a,b]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

from dipo_tools.eval.bfcl_data import ensure_bfcl_root, provenance, resolve_categories

#: bfcl maps ``_`` in result folder names back to ``/``, so registry names must not contain ``_``.
DEFAULT_REGISTRY_NAME = "dipo-local-FC"


def _child(argv: list[str]) -> None:
    """Inside the child: register the model, then hand over to bfcl's typer CLI."""
    reg, served = os.environ["DIPO_BFCL_REGISTRY_NAME"], os.environ["DIPO_BFCL_SERVED_MODEL"]
    from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING, ModelConfig
    from bfcl_eval.model_handler.api_inference.openai_completion import OpenAICompletionsHandler

    MODEL_CONFIG_MAPPING[reg] = ModelConfig(
        model_name=served, display_name=f"{served} (dipo-tools, FC)", url="", org="local", license="unknown",
        model_handler=OpenAICompletionsHandler, is_fc_model=True, underscore_to_dot=True)
    from bfcl_eval.__main__ import cli

    sys.argv = ["bfcl", *argv]
    cli()


def run_official(base_url: str, served_model: str, categories: str | list[str], project_root: str | os.PathLike,
                 *, ids: list[str] | None = None, registry_name: str = DEFAULT_REGISTRY_NAME,
                 api_key: str = "EMPTY", temperature: float = 0.001, timeout: float | None = None) -> dict[str, Any]:
    """Run bfcl's generate + evaluate in a child process and return a report like ``evaluate_bfcl``'s.

    ``ids`` restricts generation to those entries (bfcl's ``--run-ids``) and evaluation to what was generated
    (``--partial-eval``).
    """
    if "_" in registry_name:
        raise ValueError(f"registry name {registry_name!r} must not contain '_' (bfcl maps it to '/')")
    cats = resolve_categories(categories)
    ensure_bfcl_root()
    root = pathlib.Path(project_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BFCL_PROJECT_ROOT": str(root), "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": api_key,
           "DIPO_BFCL_REGISTRY_NAME": registry_name, "DIPO_BFCL_SERVED_MODEL": served_model}
    cat_arg = ",".join(c.data for c in cats)
    gen = ["generate", "--model", registry_name, "--test-category", cat_arg, "--temperature", str(temperature),
           "--allow-overwrite"]
    ev = ["evaluate", "--model", registry_name, "--test-category", cat_arg]
    if ids:
        from bfcl_eval.utils import extract_test_category_from_id

        by_cat: dict[str, list[str]] = {}
        wanted = {c.data for c in cats}
        for i in ids:
            cat = extract_test_category_from_id(i)
            if cat not in wanted:
                raise ValueError(f"id {i!r} (category {cat}) is not in the selected categories {cat_arg}")
            by_cat.setdefault(cat, []).append(i)
        (root / "test_case_ids_to_generate.json").write_text(json.dumps(by_cat))
        gen.append("--run-ids")
        ev.append("--partial-eval")
    for argv in (gen, ev):
        proc = subprocess.run([sys.executable, "-m", "dipo_tools.eval.official", "--_bfcl-child", *argv], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"bfcl {argv[0]} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return collect_scores(root, registry_name, cats, partial=bool(ids))


def collect_scores(root: pathlib.Path, registry_name: str, cats, partial: bool = False) -> dict[str, Any]:
    """Read bfcl's score headers (``score/<model>/<group>/BFCL_v4_<cat>_score.json``, first line)."""
    from dipo_tools.eval.bfcl import v3_overall

    model_dir = pathlib.Path(root) / "score" / registry_name.replace("/", "_")
    scores: dict[str, dict[str, Any]] = {}
    for c in cats:
        hits = list(model_dir.rglob(f"BFCL_v4_{c.data}_score.json"))
        if not hits:
            continue
        head = json.loads(hits[0].read_text().splitlines()[0])
        scores[c.v3] = {"correct": head["correct_count"], "total": head["total_count"], "accuracy": head["accuracy"],
                        "group": c.group, "errors": {}}
    return {"benchmark": "BFCL V3 (bfcl-eval generate+evaluate)", **provenance(), "categories": scores,
            "summary": v3_overall(scores), "partial": partial, "registry_name": registry_name}


def add_official_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True, help="model name the server serves")
    p.add_argument("--categories", default="all")
    p.add_argument("--ids", default=None)
    p.add_argument("--project-root", required=True, help="bfcl's result/score folder root")
    p.add_argument("--api-key", default="EMPTY")


def run_from_args(a: argparse.Namespace) -> int:
    rep = run_official(a.base_url, a.model, a.categories, a.project_root, ids=a.ids.split(",") if a.ids else None,
                       api_key=a.api_key)
    print(json.dumps({"summary": rep["summary"], "categories": {k: v["accuracy"] for k, v in rep["categories"].items()}}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--_bfcl-child":
        _child(argv[1:])
        return 0
    p = argparse.ArgumentParser(prog="python -m dipo_tools.eval.official", description=__doc__.split("\n\n")[0])
    add_official_args(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
