"""Per-step metrics: JSONL (always), TensorBoard and wandb (optional), and PNG plots at the end."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def _clean(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return None if isinstance(v, float) and not math.isfinite(v) else v
    if hasattr(v, "item"):
        return _clean(v.item())
    return None


class MetricsLogger:
    """Writes one JSON object per call to ``<dir>/metrics.jsonl`` (appending, so resumed runs continue)."""

    def __init__(self, out_dir: str, tensorboard: bool = True, wandb_project: str | None = None,
                 run_name: str | None = None, config: dict | None = None) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(os.path.join(out_dir, "tensorboard"))
            except Exception as e:  # tensorboard is optional at run time; never crash training over it
                print(f"[dipo] TensorBoard disabled: {e}")
        if wandb_project:
            try:
                import wandb

                self._wandb = wandb.init(project=wandb_project, name=run_name, config=config or {})
            except Exception as e:
                print(f"[dipo] wandb disabled: {e}")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step}
        for k, v in metrics.items():
            if isinstance(v, str):
                row[k] = v
                continue
            c = _clean(v)
            if c is not None or isinstance(v, float):
                row[k] = c
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        numeric = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for k, v in numeric.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numeric, step=step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def series(rows: Iterable[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(r["step"])
            ys.append(float(v))
    return xs, ys


DEFAULT_PLOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("train/reward", "eval/reward")),
    ("success", ("train/success", "eval/success")),
    ("nonzero_advantage", ("dipo/frac_nonzero_adv", "dipo/frac_nonzero_adv_grpo")),
    ("groups", ("dipo/frac_easy", "dipo/frac_hard", "dipo/frac_normal")),
    ("entropy", ("actor/entropy",)),
    ("tau_ppl", ("dipo/tau_ppl",)),
)


def plot_metrics(rows: list[dict], out_dir: str, plots=DEFAULT_PLOTS) -> list[str]:
    """One PNG per panel; returns the written paths. Missing keys are skipped."""
    import matplotlib  # here: the headless backend must be chosen before pyplot loads, and only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, keys in plots:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        drawn = False
        for k in keys:
            xs, ys = series(rows, k)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=k)
                drawn = True
        if drawn:
            ax.set_xlabel("step")
            ax.set_title(name)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = os.path.join(out_dir, f"{name}.png")
            fig.savefig(path, dpi=100)
            written.append(path)
        plt.close(fig)
    return written


def progress_bar(it, desc: str, enabled: bool, **kw):
    """``it`` wrapped in a tqdm bar when ``enabled`` (``trainer.progress``), else unchanged."""
    return tqdm(it, desc=desc, dynamic_ncols=True, **kw) if enabled else it
