"""The results of a sweep: one table (CSV + Markdown), paired differences, checked predictions, plots.

Everything is recomputed from the runs' ``metrics.jsonl`` files, so ``dipo sweep --report-only`` rebuilds
it at any time, from any subset of finished runs (a run counts only once its ``done.json`` exists).

Files written to the sweep's output folder:

* ``runs.csv``: one row per finished run (task, variant, seed, every column).
* ``results.csv``: per task, variant and column: n, mean, sd and the confidence interval over seeds.
* ``paired.csv``: per task, tested pair and column: the paired difference, its interval, t, p, Holm's p.
* ``RESULTS.md``: the tables, the predictions, the test used, versions and wall time, and the plots
  (``plots/<task>_*.png``).
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time

from dipo_tools.engines.metrics import read_metrics, series
from dipo_tools.sweep import stats
from dipo_tools.sweep.plots import plot
from dipo_tools.sweep.runner import Job
from dipo_tools.sweep.spec import REPO_ROOT as _ROOT, MetricSpec, ReachSpec, SweepSpec
from dipo_tools.sweep.layout import DONE_FILE, PAIRED_CSV, RESULTS_CSV, RESULTS_MD, RUNS_CSV


# --------------------------------------------------------------------------------------- per run values
def metric_value(rows: list[dict], m: MetricSpec) -> float:
    _, ys = series(rows, m.key)
    ys = [y for y in ys if math.isfinite(y)]
    if not ys:
        return float("nan")
    if m.stat == "final":
        return ys[-1]
    if m.stat == "first":
        return ys[0]
    if m.stat == "mean":
        return sum(ys) / len(ys)
    last = ys[-m.window:]
    if m.stat == "last":
        return sum(last) / len(last)
    first = ys[: m.window]
    return sum(last) / len(last) - sum(first) / len(first)  # change


def steps_to_reach(rows: list[dict], r: ReachSpec, total_steps: int) -> tuple[float, bool]:
    """``(step, reached)``: the first step where the moving average of ``r.key`` is >= the level;
    ``(total_steps, False)`` when it never is (a lower bound)."""
    xs, ys = series(rows, r.key)
    level = r.level
    if r.relative:
        start = [y for y in ys[: r.window] if math.isfinite(y)]
        if not start:
            return float(total_steps), False
        level += sum(start) / len(start)
    for x, y in zip(xs, stats.moving_average(ys, r.window)):
        if math.isfinite(y) and y >= level:
            return float(x), True
    return float(total_steps), False


def run_values(spec: SweepSpec, task: str, rows: list[dict], total_steps: int) -> tuple[dict[str, float], dict[str, bool]]:
    values = {m.column: metric_value(rows, m) for m in spec.metrics}
    reached = {}
    for r in spec.reach_of(task):
        values[r.column], reached[r.column] = steps_to_reach(rows, r, total_steps)
    return values, reached


# ------------------------------------------------------------------------------------------- collect
def collect(spec: SweepSpec, jobs: list[Job]) -> list[dict]:
    """One record per finished training run: identity, columns, reach flags, timing, and its rows."""
    out = []
    for j in jobs:
        done = os.path.join(j.dir, DONE_FILE)
        if j.kind != "train" or not os.path.exists(done):
            continue
        with open(done, encoding="utf-8") as fh:
            info = json.load(fh)
        rows = read_metrics(os.path.join(j.dir, "metrics.jsonl"))
        values, reached = run_values(spec, j.task, rows, j.total_steps)
        out.append({"task": j.task, "variant": j.variant, "seed": j.seed, "values": values, "reached": reached,
                    "seconds": info.get("seconds", float("nan")), "cpu_seconds": info.get("cpu_seconds", float("nan")),
                    "rows": rows, "dir": j.dir})
    return out


def by_seed(records: list[dict], task: str, variant: str, column: str) -> dict[int, float]:
    return {r["seed"]: r["values"][column] for r in records if r["task"] == task and r["variant"] == variant}


# ------------------------------------------------------------------------------------------- tables
def summary_rows(spec: SweepSpec, records: list[dict]) -> list[dict]:
    out = []
    for task in spec.tasks:
        for variant in spec.variants:
            for col in spec.columns(task):
                vals = by_seed(records, task, variant, col)
                if not vals:
                    continue
                s = stats.summarize(list(vals.values()), spec.confidence)
                row = {"task": task, "variant": variant, "column": col, "n": s.n, "mean": s.mean, "sd": s.sd,
                       "ci_low": s.low, "ci_high": s.high}
                reach = [r["reached"].get(col) for r in records
                         if r["task"] == task and r["variant"] == variant and col in r["reached"]]
                if reach:
                    row["reached"] = sum(bool(x) for x in reach)
                out.append(row)
    return out


def paired_rows(spec: SweepSpec, records: list[dict]) -> list[dict]:
    out = []
    for task in spec.tasks:
        for col in spec.columns(task):
            family = []
            for a, b in spec.all_pairs():
                va, vb = by_seed(records, task, a, col), by_seed(records, task, b, col)
                if not va or not vb:
                    continue
                p = stats.paired(va, vb, spec.confidence)
                family.append({"task": task, "variant": a, "against": b, "column": col, "n_pairs": p.n,
                               "mean_diff": p.mean, "sd_diff": p.sd, "ci_low": p.low, "ci_high": p.high,
                               "t": p.t, "p": p.p, "wins": p.wins, "losses": p.losses})
            for row, adj in zip(family, stats.holm([r["p"] for r in family])):
                row["p_holm"] = adj
            out.extend(family)
    return out


def check_predictions(spec: SweepSpec, paired: list[dict]) -> list[dict]:
    out = []
    for task in spec.tasks:
        for pr in spec.predictions:
            row = next((r for r in paired if r["task"] == task and r["variant"] == pr.variant
                        and r["against"] == pr.against and r["column"] == pr.column), None)
            verdict = "not enough paired seeds"
            if row is not None and row["n_pairs"] >= 2 and math.isfinite(row["ci_low"]):
                want = 1 if pr.sign == "+" else -1
                agrees = math.copysign(1, row["mean_diff"]) == want and row["mean_diff"] != 0
                if (row["ci_low"] > 0 and want > 0) or (row["ci_high"] < 0 and want < 0):
                    verdict = "confirmed: the interval excludes 0 on the predicted side"
                elif (row["ci_low"] > 0 and want < 0) or (row["ci_high"] < 0 and want > 0):
                    verdict = "contradicted: the interval excludes 0 on the opposite side"
                else:
                    verdict = (f"not detected: the interval includes 0 (observed sign "
                               f"{'agrees' if agrees else 'disagrees'})")
            out.append({"task": task, "variant": pr.variant, "against": pr.against, "column": pr.column,
                        "sign": pr.sign, "note": pr.note, "row": row, "verdict": verdict})
    return out


def _write_csv(path: str, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


# ------------------------------------------------------------------------------------------ markdown
def _f(x, nd=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _p(x) -> str:
    return "n/a" if not stats._finite(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "verl", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is simply not listed
            pass
    try:
        out["git"] = subprocess.run(["git", "-C", _ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["git"] = "unknown"
    return out


def _shown(path: str) -> str:
    """Paths inside the repository relative to its root (as in the committed commands), others absolute."""
    path = os.path.abspath(path)
    return os.path.relpath(path, _ROOT) if path.startswith(_ROOT + os.sep) else path


def _command(spec: SweepSpec) -> str:
    return f"dipo sweep --config {_shown(spec.source) if spec.source else 'SWEEP.yaml'}"


def timing(jobs: list[Job]) -> dict:
    """Wall and CPU seconds of the finished jobs, and the span from the first start to the last end."""
    infos = []
    for j in jobs:
        try:
            with open(os.path.join(j.dir, DONE_FILE), encoding="utf-8") as fh:
                infos.append(json.load(fh))
        except (OSError, json.JSONDecodeError):
            continue
    starts = [i["finished"] - i["seconds"] for i in infos if "finished" in i and "seconds" in i]
    ends = [i["finished"] for i in infos if "finished" in i]
    return {"n": len(infos), "jobs": sum(i.get("seconds", 0.0) for i in infos),
            "cpu": sum(i.get("cpu_seconds", 0.0) for i in infos),
            "span": (max(ends) - min(starts)) if starts and ends else 0.0}


def markdown(spec: SweepSpec, records: list[dict], summary: list[dict], paired: list[dict], predictions: list[dict],
             plots: list[tuple[str, str]], n_planned: int, timing: dict) -> str:
    c = int(round(spec.confidence * 100))
    t = timing
    lines = [f"# Sweep `{spec.name}`", ""]
    lines.append(f"Command: `{_command(spec)}`. Seeds: {list(spec.seeds)}. Finished runs: {len(records)} of {n_planned}. "
                 f"{spec.parallel} job(s) at a time, {spec.threads_per_run} torch thread(s) each. "
                 f"Wall time: {t['jobs'] / 3600:.2f} h summed over the {t['n']} finished jobs (warm-ups included; "
                 f"{t['cpu'] / 3600:.2f} h of CPU), {t['span'] / 3600:.2f} h from the first job's start to the last "
                 "one's end (including any pause between parts).")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f". Written {time.strftime('%Y-%m-%d %H:%M')}.")
    lines.append("")
    lines.append("Variants (overrides on top of each task's config and the sweep's common overrides "
                 f"`{' '.join(spec.overrides) or '-'}`):")
    lines.append("")
    for v, ov in spec.variants.items():
        lines.append(f"- `{v}`{' (baseline)' if v == spec.baseline else ''}: `{' '.join(ov) or '(task config as is)'}`")
    lines.append("")
    lines.append(f"**How to read this.** Each run gives one number per column; a variant's cell is the mean over seeds with a "
                 f"{c}% Student-t interval (n-1 degrees of freedom). Variants are compared **in pairs on the same seeds** "
                 "(same warmed-up weights, task order and evaluation set): the paired difference, its "
                 f"{c}% interval and the two-sided paired t-test (t with n-1 degrees of freedom; Holm's adjustment "
                 "over the comparisons of one column and task). An interval that includes 0 means no difference was "
                 "detected at that level, not that there is none. Column names are `metric@stat`: `final` = last "
                 "logged value, `lastK` = mean of the last K logged values, `mean` = mean over the run, `changeK` = "
                 "lastK minus firstK. `steps_to[...]` is the first step where the metric's moving average reaches the "
                 "level; runs that never reach it count as the total number of steps (a lower bound; `reached` says how many did).")
    for task in spec.tasks:
        cols = [col for col in spec.columns(task) if any(r["task"] == task and r["column"] == col for r in summary)]
        if not cols:
            continue
        lines += ["", f"## Task `{task}`", "", f"Config: `{_shown(spec.tasks[task].config)}`"
                  + (f" with `{' '.join(spec.tasks[task].overrides)}`" if spec.tasks[task].overrides else "") + ".", ""]
        lines.append(f"### Mean over seeds [{c}% CI]")
        lines.append("")
        lines.append("| variant | n | " + " | ".join(cols) + " |")
        lines.append("|---|---|" + "---|" * len(cols))
        for v in spec.variants:
            cells = []
            n = 0
            for col in cols:
                r = next((x for x in summary if x["task"] == task and x["variant"] == v and x["column"] == col), None)
                if r is None:
                    cells.append("")
                    continue
                n = max(n, r["n"])
                cell = f"{_f(r['mean'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
                if "reached" in r:
                    cell += f" ({r['reached']}/{r['n']} reached)"
                cells.append(cell)
            if n:
                lines.append(f"| `{v}` | {n} | " + " | ".join(cells) + " |")
        lines += ["", f"### Paired differences (variant − against, same seeds) [{c}% CI], p (Holm)", ""]
        lines.append("| variant − against | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for a, b in spec.all_pairs():
            cells = []
            for col in cols:
                r = next((x for x in paired if x["task"] == task and x["variant"] == a and x["against"] == b
                          and x["column"] == col), None)
                if r is None or r["n_pairs"] < 2:
                    cells.append("n/a" if r is None else f"n={r['n_pairs']}")
                    continue
                mark = "**" if r["ci_low"] > 0 or r["ci_high"] < 0 else ""
                cells.append(f"{mark}{r['mean_diff']:+.3f} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]{mark} "
                             f"p={_p(r['p'])} ({_p(r['p_holm'])}), {r['wins']}/{r['n_pairs']} up")
            lines.append(f"| `{a}` − `{b}` | " + " | ".join(cells) + " |")
        preds = [p for p in predictions if p["task"] == task]
        if preds:
            lines += ["", "### Predictions", ""]
            for p in preds:
                r = p["row"]
                obs = (f"{r['mean_diff']:+.4f} [{_f(r['ci_low'], 4)}, {_f(r['ci_high'], 4)}] over {r['n_pairs']} seeds"
                       if r else "no data")
                lines.append(f"- `{p['variant']}` − `{p['against']}` on `{p['column']}` should be "
                             f"{'positive' if p['sign'] == '+' else 'negative'}{' (' + p['note'] + ')' if p['note'] else ''}: "
                             f"observed {obs}; **{p['verdict']}**.")
        task_plots = [(path, title) for path, title in plots if os.path.basename(path).startswith(task + "_")]
        if task_plots:
            lines += ["", "### Plots", ""]
            for path, title in task_plots:
                lines.append(f"![{title}]({path})")
    lines += ["", "Per-run values: `runs.csv`; these tables as CSV: `results.csv`, `paired.csv`."]
    return "\n".join(lines) + "\n"


def build_report(spec: SweepSpec, jobs: list[Job]) -> str:
    """Write runs.csv, results.csv, paired.csv, plots and RESULTS.md; return the Markdown path."""
    out_dir = os.path.abspath(spec.output_dir)
    records = collect(spec, jobs)
    summary = summary_rows(spec, records)
    paired = paired_rows(spec, records)
    predictions = check_predictions(spec, paired)
    _write_csv(os.path.join(out_dir, RUNS_CSV),
               [{"task": r["task"], "variant": r["variant"], "seed": r["seed"], **r["values"],
                 "seconds": r["seconds"]} for r in records])
    _write_csv(os.path.join(out_dir, RESULTS_CSV), summary)
    _write_csv(os.path.join(out_dir, PAIRED_CSV), paired)
    plots = plot(spec, records, paired, out_dir) if records else []
    path = os.path.join(out_dir, RESULTS_MD)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(markdown(spec, records, summary, paired, predictions, plots,
                          n_planned=sum(j.kind == "train" for j in jobs), timing=timing(jobs)))
    return path
