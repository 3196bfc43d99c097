"""``dipo demo``: warm up a tiny model once, then train DiPO and GRPO (optionally DAPO) from that same start.

Steps (all local, no downloads):

1. build the run-time tokenizer and a tiny Qwen2 (``configs/local/demo.yaml``, shipped as ``demo.yaml`` here);
2. supervised warm-up on oracle episodes of the ``inventory`` environment's training tasks, so the model
   knows the call format but is still unreliable on items/quantities (many all-right / all-wrong groups);
3. for each algorithm: copy the warmed-up weights, same seeds, RL for ``trainer.total_steps`` steps,
   evaluating greedily on held-out tasks every ``eval_every`` steps;
4. write ``REPORT.md`` with comparison plots; every number in it is read from the runs' metrics files.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the demo runs on headless machines
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dipo_tools.engines.config import ConfigError, LocalConfig, load_config  # noqa: E402
from dipo_tools.engines.local import LocalEngine, load_tasks_for  # noqa: E402
from dipo_tools.engines.local import unseen_request_tasks as _unseen_requests  # noqa: E402
from dipo_tools.engines.metrics import read_metrics, series  # noqa: E402
from tool_envs.registry import task_generator  # noqa: E402

#: The demo's config, shipped in the package. In a checkout it is a symbolic link to configs/local/demo.yaml (the
#: one copy, which `dipo train --config configs/local/demo.yaml` reads too); a built wheel holds its content.
DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "demo.yaml")
ALGOS = ("dipo", "grpo", "dapo")
#: ``quick=True``: a smoke run, a handful of steps on few tasks.
QUICK_OVERRIDES = ("sft.steps=4", "trainer.total_steps=2", "trainer.eval_every=1", "data.num_train=16",
                   "data.num_eval=4", "rollout.tasks_per_step=2", "rollout.group_size=4", "model.preset=test")


def _default_config_path() -> str:
    return DEFAULT_CONFIG


def run_demo(config: str | None = None, output_dir: str | None = None, steps: int | None = None,
             algorithms: Sequence[str] | None = None, quick: bool = False, overrides: Sequence[str] = (),
             progress: bool = True) -> str:
    """Run the whole demo and return the path of the markdown report."""
    algorithms = list(algorithms or ("dipo", "grpo"))
    bad = [a for a in algorithms if a not in ALGOS]
    if bad:
        raise ConfigError(f"demo: unknown algorithm(s) {bad}; allowed values: {list(ALGOS)}")
    ov = list(overrides)
    if quick:
        ov = [*QUICK_OVERRIDES, *ov]
    if steps is not None:
        ov.append(f"trainer.total_steps={steps}")
    if output_dir is not None:
        ov.append(f"trainer.output_dir={output_dir}")
    ov.append(f"trainer.progress={str(progress).lower()}")
    cfg = load_config(config or _default_config_path(), ov)
    out = cfg.trainer.output_dir
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()

    # 1-2. one warm-up shared by every algorithm
    train, heldout_split, env = load_tasks_for(cfg)
    # Main measure: one task per distinct request text never used in training (the held-out split's texts plus
    # training-split texts the training tasks did not draw), i.e. new phrasing/item/quantity combinations; greedy
    # answers depend only on the text, so every evaluation task is an independent sample. Secondary: new
    # episodes of training-split requests (texts mostly seen in training, stocks differ).
    generate = task_generator(cfg.data.env)
    gen_kw = dict(cfg.data.generator)
    n_eval = len(heldout_split)
    heldout = _unseen_requests(
        train, [heldout_split, generate(4 * n_eval, seed=cfg.data.seed + 7920, split="heldout", **gen_kw),
                generate(4 * n_eval, seed=cfg.data.seed + 104730, split="train", **gen_kw)], n_eval)
    fresh = generate(n_eval, seed=cfg.data.seed + 104729, split="train", **gen_kw)
    warm_cfg = _with(cfg, trainer={"output_dir": os.path.join(out, "warmup")})
    warm = LocalEngine(warm_cfg, train_tasks=train, eval_tasks=heldout, env=env, log=False)
    t0 = time.perf_counter()
    sft_losses = warm.sft_warmup()
    sft_time = time.perf_counter() - t0
    start_state = copy.deepcopy(warm.model.state_dict())
    tokenizer = warm.tokenizer
    n_params = sum(p.numel() for p in warm.model.parameters())
    print(f"[demo] warm-up: {len(sft_losses)} steps in {sft_time:.0f}s, loss "
          f"{sft_losses[0] if sft_losses else float('nan'):.3f} -> {sft_losses[-1] if sft_losses else float('nan'):.3f}")

    # 3. the same start for every algorithm
    runs: dict[str, dict] = {}
    for algo in algorithms:
        acfg = _with(cfg, algorithm={"name": algo}, trainer={"output_dir": os.path.join(out, algo)})
        metrics_file = os.path.join(acfg.trainer.output_dir, "metrics.jsonl")
        if os.path.exists(metrics_file) and acfg.trainer.resume in ("none", "", None):
            os.remove(metrics_file)  # a demo re-run starts fresh (trainer.resume=auto continues instead)
        model = copy.deepcopy(warm.model)
        model.load_state_dict(start_state)
        torch.manual_seed(cfg.trainer.seed)
        eng = LocalEngine(acfg, tokenizer=tokenizer, model=model, train_tasks=train, eval_tasks=heldout, env=env,
                          extra_eval={"fresh": fresh})
        t0 = time.perf_counter()
        eng.train()
        eng.finish()
        runs[algo] = {"rows": read_metrics(metrics_file), "time": time.perf_counter() - t0}
        print(f"[demo] {algo}: {eng.step} steps in {runs[algo]['time']:.0f}s")

    # 4. report
    n_texts = len({tuple(t.user_texts()) for t in heldout})
    report = write_report(out, cfg, runs, sft_losses, sft_time, n_params, len(train), len(heldout),
                          total_time=time.perf_counter() - t_start, n_texts=n_texts)
    return report


def output_dir_of(config: str | None, output_dir: str | None, overrides: Sequence[str] = ()) -> str:
    """Where ``run_demo`` with these arguments writes (for messages about an interrupted demo)."""
    if output_dir:
        return output_dir
    return load_config(config or _default_config_path(), list(overrides)).trainer.output_dir


def _with(cfg: LocalConfig, **sections) -> LocalConfig:
    """A copy of ``cfg`` with some fields of some sections replaced (validated again)."""
    new = copy.deepcopy(cfg)
    for sec, values in sections.items():
        setattr(new, sec, dataclasses.replace(getattr(new, sec), **values))
    return new


# ------------------------------------------------------------------------------------------ report
def _last(rows, key):
    xs, ys = series(rows, key)
    return ys[-1] if ys else float("nan")


def _first(rows, key):
    xs, ys = series(rows, key)
    return ys[0] if ys else float("nan")


def _mean(rows, key, skip_first: bool = False):
    xs, ys = series([r for r in rows if not (skip_first and r["step"] == 0)], key)
    ys = [y for y in ys if math.isfinite(y)]
    return float(np.mean(ys)) if ys else float("nan")


def _fmt(x, nd=3):
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


COMPARE_PLOTS = (
    ("eval_reward", "eval/reward", "held-out reward (greedy)"),
    ("eval_success", "eval/success", "held-out success rate (greedy)"),
    ("fresh_success", "eval_fresh/success", "success on new training-distribution tasks (greedy)"),
    ("fresh_reward", "eval_fresh/reward", "reward on new training-distribution tasks (greedy)"),
    ("train_reward", "train/reward", "training reward (sampled, 5-step mean)"),
    ("nonzero_adv", "dipo/frac_nonzero_adv", "fraction of responses with a non-zero advantage"),
    ("extreme_groups", ("dipo/frac_easy", "dipo/frac_hard"), "extreme groups: easy (solid) / hard (dashed)"),
    ("tau_ppl", "dipo/tau_ppl", "PSD threshold tau* (as PPL; missing = not disentangled)"),
    ("entropy", "actor/entropy", "policy entropy on response tokens"),
    ("quadrants", ("dipo/quadrant_cl", "dipo/quadrant_ch", "dipo/quadrant_el", "dipo/quadrant_eh"),
     "quadrant shares (DiPO run)"),
)


def _plot(out: str, runs: dict[str, dict]) -> list[tuple[str, str]]:
    written = []
    colors = {"dipo": "tab:red", "grpo": "tab:blue", "dapo": "tab:green"}
    for name, keys, title in COMPARE_PLOTS:
        fig, ax = plt.subplots(figsize=(5.5, 3.3))
        drawn = False
        if name == "quadrants":
            rows = runs.get("dipo", next(iter(runs.values())))["rows"]
            for k in keys:
                xs, ys = series(rows, k)
                if xs:
                    ax.plot(xs, ys, label=k.split("_")[-1].upper())
                    drawn = True
        else:
            for algo, run in runs.items():
                for i, k in enumerate(keys if isinstance(keys, tuple) else (keys,)):
                    xs, ys = series(run["rows"], k)
                    if k.startswith("train/") or k.startswith("dipo/") or k.startswith("actor/"):
                        ys = _smooth(ys)
                    if xs:
                        ax.plot(xs, ys, color=colors.get(algo), linestyle="-" if i == 0 else "--",
                                marker="o" if k.startswith("eval/") else None, ms=3,
                                label=algo if i == 0 else None)
                        drawn = True
        if drawn:
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = os.path.join(out, f"{name}.png")
            fig.savefig(path, dpi=100)
            written.append((name, title))
        plt.close(fig)
    return written


def _smooth(ys: list[float], w: int = 5) -> list[float]:
    out = []
    for i in range(len(ys)):
        win = [y for y in ys[max(0, i - w + 1): i + 1] if math.isfinite(y)]
        out.append(float(np.mean(win)) if win else float("nan"))
    return out


def write_report(out: str, cfg: LocalConfig, runs: dict[str, dict], sft_losses, sft_time, n_params, n_train,
                 n_eval, total_time: float, n_texts: int | None = None) -> str:
    plots = _plot(out, runs)
    # Greedy answers depend only on the request text, so tasks sharing a text are not independent samples:
    # standard errors count distinct held-out texts.
    n_se = n_texts or n_eval
    lines = ["# DiPO vs GRPO on the CPU demo", ""]
    lines += [
        f"Model: tiny Qwen2 (`{cfg.model.preset}`, {n_params/1e6:.2f}M parameters, run-time BPE vocab "
        f"{cfg.model.vocab_size}), trained from scratch. Environment: `{cfg.data.env}` ({n_train} training tasks, "
        f"{n_eval} evaluation tasks, one per distinct request text that never occurs in training: new combinations of "
        f"phrasing, item and quantity{_gen_note(cfg)}). Reward: `{cfg.reward.name}` "
        f"(score in [0, 1]; success = the episode passes every check).",
        f"Warm-up: {len(sft_losses)} supervised steps in {sft_time:.0f}s (loss "
        f"{_fmt(sft_losses[0] if sft_losses else float('nan'))} -> {_fmt(sft_losses[-1] if sft_losses else float('nan'))}). "
        f"RL: {cfg.trainer.total_steps} steps x {cfg.rollout.tasks_per_step} tasks x G={cfg.rollout.group_size}, "
        f"T={cfg.rollout.temperature}, lr={cfg.actor.lr}, clip {cfg.actor.clip_ratio_low}/{cfg.actor.clip_ratio_high}, "
        f"token-mean, DiPO alpha={cfg.algorithm.dipo.alpha}. Every run starts from the same weights and seed. "
        f"Total wall time {total_time/60:.1f} min.",
        "",
        f"Standard errors (SE) are binomial with n = {n_se} distinct held-out request texts (greedy answers depend "
        f"only on the text). 'New-episode success' is on new tasks of the training split whose texts mostly occur "
        f"in training (in-distribution check, not generalisation).",
        "",
        "## Results (every number read from the runs' `metrics.jsonl`)",
        "",
        "| algorithm | held-out reward start -> end | held-out success start -> end (± SE) | change (± SE) | "
        "best held-out success | new-episode success start -> end | "
        "mean train reward | responses with non-zero advantage | easy groups | hard groups | steps PSD disentangled | "
        "reallocated groups (hard/easy) | entropy start -> end | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for algo, run in runs.items():
        rows = run["rows"]
        _, succ = series(rows, "eval/success")
        steps_rows = [r for r in rows if "train/reward" in r]
        dis = [r.get("dipo/disentangled") for r in steps_rows if r.get("dipo/disentangled") is not None]
        hard = sum(r.get("dipo/n_realloc_hard", 0) or 0 for r in steps_rows)
        easy = sum(r.get("dipo/n_realloc_easy", 0) or 0 for r in steps_rows)
        s = dict(
            r0=_first(rows, "eval/reward"), r1=_last(rows, "eval/reward"), s0=_first(rows, "eval/success"),
            s1=_last(rows, "eval/success"), sbest=max(succ) if succ else float("nan"),
            tr=_mean(rows, "train/reward"), nz=_mean(rows, "dipo/frac_nonzero_adv"),
            nz_grpo=_mean(rows, "dipo/frac_nonzero_adv_grpo"), fe=_mean(rows, "dipo/frac_easy"),
            fh=_mean(rows, "dipo/frac_hard"), dis=(float(np.mean(dis)) if dis else float("nan")), hard=hard, easy=easy,
            e0=_first(rows, "actor/entropy"), e1=_last(rows, "actor/entropy"), time=run["time"],
            f0=_first(rows, "eval_fresh/success"), f1=_last(rows, "eval_fresh/success"),
        )
        summary[algo] = s
        lines.append(
            f"| {algo} | {_fmt(s['r0'])} -> {_fmt(s['r1'])} | {_fmt(s['s0'])} ± {_fmt(_se(s['s0'], n_se))} -> "
            f"{_fmt(s['s1'])} ± {_fmt(_se(s['s1'], n_se))} | {s['s1'] - s['s0']:+.3f} ± {_fmt(_se_diff(s, n_se))} | "
            f"{_fmt(s['sbest'])} | "
            f"{_fmt(s['f0'])} -> {_fmt(s['f1'])} | "
            f"{_fmt(s['tr'])} | {_fmt(s['nz'])} | {_fmt(s['fe'])} | {_fmt(s['fh'])} | {_fmt(s['dis'], 2)} | "
            f"{f'{hard}/{easy}' if algo == 'dipo' else f'not applied ({hard}/{easy} would qualify)'} | {_fmt(s['e0'])} -> {_fmt(s['e1'])} | {s['time']:.0f}s |")
    lines += ["", "## What this shows", ""]
    lines += _honest_reading(summary, n_se)
    lines += ["", "## Plots", ""]
    for name, title in plots:
        lines += [f"**{title}**", "", f"![{title}]({name}.png)", ""]
    lines += [
        "## Reproduce / go further", "",
        "- `dipo demo` (this report), `dipo demo --steps 150` for longer runs, `dipo demo --algorithms dipo,grpo,dapo`.",
        "- Per-step metrics of each run: `<run>/metrics.jsonl` and TensorBoard files in `<run>/tensorboard`.",
        "- The same command trains a real model: `dipo train --config configs/local/demo.yaml model.path=/path/to/Qwen2.5-0.5B-Instruct model.device=cuda` "
        "(remove `rollout.system_prompt` to let the Qwen template list the tools), or use the verl engine for multi-GPU.",
        "",
    ]
    path = os.path.join(out, "REPORT.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, default=float)
    return path


def _gen_note(cfg: LocalConfig) -> str:
    g = dict(cfg.data.generator or {})
    return f"; generator options {g}" if g else ""


def _se(p: float, n: int) -> float:
    """Binomial standard error of a success rate measured on ``n`` tasks."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)) if math.isfinite(p) else float("nan")


def _se_diff(s: dict, n: int) -> float:
    """Standard error of end - start success (two binomial estimates on ``n`` tasks, treated as independent)."""
    return math.sqrt(_se(s["s0"], n) ** 2 + _se(s["s1"], n) ** 2)


#: the seeded study that answers what one demo run cannot (``dipo sweep --config configs/sweeps/dipo_study.yaml``)
STUDY = "docs/results/dipo_study/README.md"


def _honest_reading(summary: dict[str, dict], n_eval: int) -> list[str]:
    """Plain-language reading generated from the numbers, with the held-out noise level stated."""
    out = []
    for algo, s in summary.items():
        if math.isfinite(s["s0"]) and math.isfinite(s["s1"]):
            delta = s["s1"] - s["s0"]
            se = _se_diff(s, n_eval)
            verb = "improved" if delta > 0 else "did not improve" if delta == 0 else "got worse"
            size = (f"{abs(delta) / se:.1f} standard errors" if se > 0 else "no measurable noise")
            clear = "a clear change" if se > 0 and abs(delta) > 2 * se else "within noise"
            out.append(f"- **{algo}**: held-out success {verb} from {_fmt(s['s0'])} to {_fmt(s['s1'])} "
                       f"({delta:+.3f} ± {_fmt(se)}, {size}: {clear}; reward {_fmt(s['r0'])} -> {_fmt(s['r1'])}); "
                       f"on new episodes of training requests {_fmt(s['f0'])} -> {_fmt(s['f1'])}.")
    if "dipo" in summary and "grpo" in summary:
        d, g = summary["dipo"], summary["grpo"]
        p = max(min((d["s1"] + g["s1"]) / 2, 1 - 1e-9), 1e-9) if math.isfinite(d["s1"] + g["s1"]) else 0.5
        se = math.sqrt(2 * p * (1 - p) / max(n_eval, 1))
        diff = d["s1"] - g["s1"]
        if math.isfinite(diff):
            sig = "larger" if abs(diff) > 2 * se else "smaller"
            out.append(f"- Final held-out success differs by {diff:+.3f} (DiPO - GRPO); the binomial standard error of "
                       f"that difference over {n_eval} distinct held-out texts is about {se:.3f}, so the gap is {sig} than two "
                       f"standard errors. One seed cannot rank the algorithms: {STUDY} compares them over seeds, paired.")
        if math.isfinite(d["nz"]) and math.isfinite(d["nz_grpo"]):
            out.append(f"- Gradient recovered by BRR: in the DiPO run {_fmt(d['nz'])} of responses had a non-zero "
                       f"advantage, versus {_fmt(d['nz_grpo'])} that GRPO's normalisation alone would give on the same "
                       f"batches; {d['hard']} hard and {d['easy']} easy groups were reallocated.")
        if math.isfinite(d["dis"]):
            out.append(f"- PSD found an admissible threshold on {100 * d['dis']:.0f}% of DiPO's steps; on the other "
                       f"steps BRR did nothing (by design: PPL did not separate right from wrong answers with 95% confidence).")
        if math.isfinite(d["fe"] + d["fh"]):
            out.append(f"- Extreme groups (all right or all wrong) were on average {100 * (d['fe'] + d['fh']):.0f}% of "
                       f"DiPO's groups and {100 * (g['fe'] + g['fh']):.0f}% of GRPO's: that is the gradient GRPO leaves unused.")
    noise = [a for a, s in summary.items() if math.isfinite(s["s0"]) and math.isfinite(s["s1"])
             and abs(s["s1"] - s["s0"]) <= 2 * _se_diff(s, n_eval)]
    if noise:
        out.append(f"- Held-out success of {', '.join(noise)} moved by less than two standard errors: in this run the RL "
                   "phase of that algorithm is not shown to improve success on unseen requests.")
    out.append(f"- Whether DiPO helps, and when: {STUDY} (DiPO, GRPO, DAPO and the paper's ablations over 5 seeds, "
               "paired differences with confidence intervals, the entropy predictions checked).")
    out.append("- Noise: one seed per algorithm, greedy evaluation; the standard errors above are binomial over the "
               "held-out tasks only and do not include seed-to-seed variation of training.")
    if "dapo" in summary:
        out.append("- DAPO drops zero-variance groups before the update (dynamic sampling without refill here), so its "
                   "steps train on fewer responses.")
    return out
