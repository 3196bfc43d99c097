"""Evaluation reports: JSON (everything), a markdown table, and a bar chart PNG.

Every report carries what moves the numbers: the prompt mode and system prompt, the policy (with a hash of
its chat template), the bfcl-eval version and a hash of the scored data files.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

from dipo_tools.eval.bfcl_data import CATEGORIES


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def bfcl_markdown(report: dict[str, Any]) -> str:
    s, cats = report["summary"], report["categories"]
    lines = ["# BFCL V3 evaluation", ""]
    if not s["complete"] or report.get("partial"):
        lines += ["> **Partial run**: " + ("some categories were not evaluated (they count as 0 in the "
                  "aggregates, as in bfcl). " if not s["complete"] else "")
                  + ("Only a subset of entries was evaluated (--limit/--ids); not comparable to the leaderboard."
                     if report.get("partial") else ""), ""]
    lines += ["| Overall | Non-Live | Live | Multi-Turn | Relevance | Irrelevance |", "|---|---|---|---|---|---|",
              f"| {_pct(s['overall'])} | {_pct(s['non_live'])} | {_pct(s['live'])} | {_pct(s['multi_turn'])} "
              f"| {_pct(s['relevance'])} | {_pct(s['irrelevance'])} |", "",
              "| group | category | accuracy | correct / total | top error |", "|---|---|---|---|---|"]
    for c in CATEGORIES:
        r = cats.get(c.v3)
        if r is None:
            lines.append(f"| {c.group} | {c.v3} | not run | – | |")
            continue
        top = next(iter(r["errors"].items()), None)
        lines.append(f"| {c.group} | {c.v3} | {_pct(r['accuracy'])} | {r['correct']} / {r['total']} | "
                     f"{f'{top[0]} ({top[1]})' if top else ''} |")
    p = report.get("prompt", {})
    lines += ["", "## Setup", "",
              f"- prompt mode: `{p.get('mode')}`; tool-call format: "
              f"`{'hermes' if p.get('mode') == 'qwen' else 'toolrl'}`; sanitized names: {p.get('sanitize_names')}",
              f"- system prompt: {('`' + p['system_prompt'][:200] + '`') if p.get('system_prompt') else 'template default' if p.get('mode') == 'qwen' else 'ToolRL prompt generated from the tools'}",
              f"- policy: `{json.dumps(report.get('policy', {}), sort_keys=True)}`",
              f"- bfcl-eval {report.get('bfcl_eval_version')}, data revision `{report.get('data_revision')}` "
              "(V4-era data files scored with the V3 categories and V3 overall formula)",
              f"- elapsed: {report.get('elapsed_s')} s"]
    return "\n".join(lines) + "\n"


def bar_chart(labels: list[str], values: list[float], path: pathlib.Path, title: str, highlight: int = 0) -> None:
    import matplotlib  # here: the headless backend must be chosen before pyplot loads, and only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels)), 4.0))
    colors = ["#d62728" if i < highlight else "#1f77b4" for i in range(len(labels))]
    bars = ax.bar(range(len(labels)), [100 * v for v in values], color=colors)
    for b, v in zip(bars, values):
        ax.text(b.get_x() + b.get_width() / 2, 100 * v + 1, f"{100 * v:.1f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_bfcl_report(report: dict[str, Any], out_dir: pathlib.Path) -> None:
    out_dir = pathlib.Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out_dir / "report.md").write_text(bfcl_markdown(report))
    s = report["summary"]
    labels = ["Overall", "Non-Live", "Live", "Multi-Turn"]
    values = [s["overall"], s["non_live"], s["live"], s["multi_turn"]]
    for c in CATEGORIES:
        if c.v3 in report["categories"]:
            labels.append(c.v3)
            values.append(report["categories"][c.v3]["accuracy"])
    bar_chart(labels, values, out_dir / "report.png",
              f"BFCL V3 — {report.get('policy', {}).get('kind')} ({report.get('prompt', {}).get('mode')} prompt)",
              highlight=4)


def math_markdown(report: dict[str, Any]) -> str:
    k = report["k"]
    lines = ["# Math evaluation", "", f"| dataset | problems | mean@{k} | maj@{k} | pass@{k} |", "|---|---|---|---|---|"]
    for name, d in report["datasets"].items():
        lines.append(f"| {name} | {d['problems']} | {_pct(d['mean_at_k'])} | {_pct(d['maj_at_k'])} | {_pct(d['pass_at_k'])} |")
    p = report.get("prompt", {})
    lines += ["", "## Setup", "", f"- prompt: `{json.dumps(p, sort_keys=True)[:300]}`",
              f"- policy: `{json.dumps(report.get('policy', {}), sort_keys=True)}`",
              f"- samples per problem k = {k}; elapsed {report.get('elapsed_s')} s"]
    return "\n".join(lines) + "\n"


def write_math_report(report: dict[str, Any], out_dir: pathlib.Path) -> None:
    out_dir = pathlib.Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out_dir / "report.md").write_text(math_markdown(report))
    labels, values = [], []
    for name, d in report["datasets"].items():
        labels += [f"{name} mean@{report['k']}", f"{name} maj@{report['k']}"]
        values += [d["mean_at_k"], d["maj_at_k"]]
    bar_chart(labels, values, out_dir / "report.png", f"Math — {report.get('policy', {}).get('kind')}")
