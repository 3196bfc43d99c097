"""The sweep's plots: curves over training per task (mean over seeds with an interval band) and a forest plot
of the paired differences. Written by :func:`dipo_tools.sweep.report.build_report`.
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")  # files only, never a window: sweeps run on headless machines
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)

from dipo_tools.engines.metrics import series  # noqa: E402
from dipo_tools.sweep import stats  # noqa: E402
from dipo_tools.sweep.layout import PLOTS_DIR  # noqa: E402
from dipo_tools.sweep.spec import SweepSpec  # noqa: E402

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
          "tab:olive", "tab:cyan")


def _curve_band(spec: SweepSpec, runs: list[dict], key: str):
    """Mean over seeds and the seed-level interval at every step that at least two runs logged ``key``.

    Not only the steps every run logged: a run can skip a step's update (DAPO when dynamic sampling leaves no
    group with variance logs ``actor/skipped_empty`` and no ``actor/*``), and an intersection over 5 seeds then
    left DAPO's entropy curve 4 steps long. Smoothing runs over the logged values of each run.
    """
    per_run = []
    for r in runs:
        xs, ys = series(r["rows"], key)
        if not key.startswith("eval"):
            ys = stats.moving_average(ys, spec.smooth)
        per_run.append(dict(zip(xs, ys)))
    if not per_run:
        return [], [], [], []
    need = min(2, len(per_run))
    xs, mean, low, high = [], [], [], []
    for s in sorted(set().union(*(set(d) for d in per_run))):
        summ = stats.summarize([d[s] for d in per_run if s in d], spec.confidence)  # skips NaN windows itself
        if summ.n >= need:
            xs.append(s)
            mean.append(summ.mean)
            low.append(summ.low if math.isfinite(summ.low) else summ.mean)
            high.append(summ.high if math.isfinite(summ.high) else summ.mean)
    return xs, mean, low, high


def plot(spec: SweepSpec, records: list[dict], paired: list[dict], out_dir: str) -> list[tuple[str, str]]:
    """Curves over training per task and a forest plot of the paired differences; returns (path, title)."""
    os.makedirs(os.path.join(out_dir, PLOTS_DIR), exist_ok=True)
    written = []
    for task in spec.tasks:
        for key in spec.curves:
            fig, ax = plt.subplots(figsize=(6, 3.4))
            drawn = False
            for i, variant in enumerate(spec.variants):
                runs = [r for r in records if r["task"] == task and r["variant"] == variant]
                xs, mean, low, high = _curve_band(spec, runs, key)
                if xs:
                    c = COLORS[i % len(COLORS)]
                    ax.plot(xs, mean, color=c, label=f"{variant} (n={len(runs)})", marker="o" if key.startswith("eval") else None, ms=3)
                    ax.fill_between(xs, low, high, color=c, alpha=0.12)
                    drawn = True
            if drawn:
                title = f"{task}: {key} (mean over seeds, {int(spec.confidence * 100)}% CI band" + \
                        (f", {spec.smooth}-step moving average)" if not key.startswith("eval") and spec.smooth > 1 else ")")
                ax.set_title(title, fontsize=8)
                ax.set_xlabel("RL step")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=6, ncol=2)
                fig.tight_layout()
                name = f"{PLOTS_DIR}/{task}_{key.replace('/', '_')}.png"
                fig.savefig(os.path.join(out_dir, name), dpi=100)
                written.append((name, title))
            plt.close(fig)
        rows = [r for r in paired if r["task"] == task and r["n_pairs"] >= 2]
        cols = [c for c in spec.columns(task) if any(r["column"] == c for r in rows)]
        if rows and cols:
            fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols), 0.35 * len(spec.all_pairs()) + 1.6),
                                     squeeze=False, sharey=True)
            pairs = spec.all_pairs()
            for ax, col in zip(axes[0], cols):
                for y, (a, b) in enumerate(pairs):
                    r = next((x for x in rows if x["column"] == col and x["variant"] == a and x["against"] == b), None)
                    if r is None or not math.isfinite(r["ci_low"]):
                        continue
                    ax.errorbar(r["mean_diff"], y, xerr=[[r["mean_diff"] - r["ci_low"]], [r["ci_high"] - r["mean_diff"]]],
                                fmt="o", color="tab:red" if r["ci_low"] > 0 or r["ci_high"] < 0 else "tab:gray", ms=3)
                ax.axvline(0, color="black", lw=0.8)
                ax.set_title(col, fontsize=7)
                ax.tick_params(labelsize=6)
                ax.grid(alpha=0.3)
            axes[0][0].set_yticks(range(len(pairs)), [f"{a} - {b}" for a, b in pairs])
            fig.suptitle(f"{task}: paired differences, {int(spec.confidence * 100)}% CI (red: excludes 0)", fontsize=8)
            fig.tight_layout()
            name = f"{PLOTS_DIR}/{task}_paired.png"
            fig.savefig(os.path.join(out_dir, name), dpi=100)
            written.append((name, f"{task}: paired differences"))
            plt.close(fig)
    return written
