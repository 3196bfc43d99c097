"""The sweep file (``configs/sweeps/*.yaml``): a grid of local-engine trainings and how to summarise it.

A sweep is tasks × variants × seeds. Every run is an ordinary ``dipo train`` configuration: the task's
YAML, then the sweep's ``overrides``, then the variant's, then the seed (written to every key in
``seed_keys``). Loading validates everything before any work and names the file, the field and the fix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

#: The code tree this module belongs to: workers import it, reports show paths relative to it.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATS = ("final", "first", "mean", "last", "change")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SweepError(ValueError):
    """A problem with a sweep file or its output directory; the message names the file, field and fix."""


@dataclass
class ReachSpec:
    """Sample efficiency: the first step at which ``key`` (moving average over ``window`` logged values)
    reaches ``level``. A run that never reaches it counts as ``total_steps`` (a lower bound, flagged in the
    table with how many runs reached the level). With ``relative``, the level is a gain over the mean of
    the run's first ``window`` values (e.g. 0.1 = ten points above where it started), which does not
    depend on how good each seed's warm-up happened to be.
    """

    key: str = "train/success"
    level: float = 0.5
    window: int = 5
    relative: bool = False

    @property
    def column(self) -> str:
        return f"steps_to[{self.key}{'>=start+' if self.relative else '>='}{self.level:g}]"


@dataclass
class MetricSpec:
    """How one column of the results table is read from a run's ``metrics.jsonl``.

    Parameters:
        key: A metric name logged by the engine (``eval/success``, ``actor/entropy``, ...).
        stat: ``final`` (the last logged value: for evaluation keys, the end of training), ``first`` (the
            first logged value), ``mean`` (over every logged value: the whole run), ``last`` (mean of the
            last ``window`` logged values: the end of training, less noisy than one step), ``change``
            (``last`` minus the mean of the first ``window`` values).
        window: Logged values averaged by ``last``/``change``. Larger is less noisy but looks further back.
    """

    key: str = ""
    stat: str = "final"
    window: int = 10

    @property
    def column(self) -> str:
        return f"{self.key}@{self.stat}{self.window if self.stat in ('last', 'change') else ''}"


@dataclass
class TaskSpec:
    """One task of the grid.

    Parameters:
        config: A local-engine YAML (``configs/local/*.yaml``), relative to the working directory or to the
            sweep file.
        overrides: ``key=value`` overrides applied to this task's runs only (before the variant's).
        reach: Sample-efficiency columns for this task only (levels are task-specific), after the sweep's.
        expected_warmup_seconds: Wall time of one warm-up measured in a pilot (``python -m
            dipo_tools.sweep.calibrate``), used for the time estimate until the sweep has measured its own;
            0 = unknown.
        expected_run_seconds: The same for one run of this task (all its RL steps and evaluations).
    """

    config: str = ""
    overrides: List[str] = field(default_factory=list)
    reach: List[ReachSpec] = field(default_factory=list)
    expected_warmup_seconds: float = 0.0
    expected_run_seconds: float = 0.0


@dataclass
class Prediction:
    """A signed expectation checked against a paired difference, e.g. the paper's Theorem 1.

    Parameters:
        variant: The treated variant.
        against: What it is paired with (same seeds).
        column: A results column (``key@stat``, as in the table).
        sign: ``+`` if ``variant - against`` should be positive, ``-`` if negative.
        note: Where the prediction comes from (shown in the report).
    """

    variant: str = ""
    against: str = ""
    column: str = ""
    sign: str = "+"
    note: str = ""


@dataclass
class SweepSpec:
    """A sweep file.

    Parameters:
        name: Shown in reports; also the default output folder name.
        output_dir: Where runs, logs and the results go (``outputs/sweeps/<name>`` when empty). A finished
            run found there is never recomputed; an interrupted one resumes from its newest checkpoint.
        tasks: ``name -> {config, overrides}``; every variant runs on every task.
        variants: ``name -> [key=value, ...]`` overrides, typically ``algorithm.*`` (``[]`` = the task's config).
        seeds: One run per seed and variant; the same seed gives every variant the same warmed-up initial
            weights, the same task order and the same evaluation set, so variants are compared in pairs.
        seed_keys: Config keys set to the seed. Both model/sampling (``trainer.seed``) and data
            (``data.seed``: generated tasks, their order, the evaluation set) by default, so the seed-level
            confidence intervals include the variation of the data as well as of the initialisation.
        baseline: The variant every other one is paired with (e.g. ``grpo``).
        compare: Extra ``[variant, against]`` pairs to test (e.g. ``[dipo_hard, dipo_easy]``).
        overrides: ``key=value`` overrides applied to every run (after the task's, before the variant's).
        parallel: Runs at once (one subprocess each). On a machine with C cores, ``parallel * threads_per_run
            <= C`` avoids oversubscription; more parallel runs finish a grid sooner than more threads per run.
        threads_per_run: Torch threads per run. Results depend on it (reduction order) but never on
            ``parallel``: a run gives bitwise the same metrics alone or next to others.
        checkpoint_every: Save a resumable checkpoint every N RL steps (0 = only at the end). Smaller loses
            less work to an interruption, at some disk I/O per save.
        keep_checkpoints: Keep each finished run's final checkpoint (``false`` deletes it to save disk; the
            metrics are all the report needs).
        metrics: Columns of the results table (see :class:`MetricSpec`).
        reach: Sample-efficiency columns (see :class:`ReachSpec`).
        predictions: Signed expectations checked in the report (see :class:`Prediction`).
        curves: Metric keys plotted over training (mean over seeds with a confidence band).
        smooth: Moving-average window of the per-step curves (evaluation curves are not smoothed).
        confidence: Level of every confidence interval (0.95 = 95 %).
    """

    name: str = ""
    output_dir: str = ""
    tasks: Dict[str, TaskSpec] = field(default_factory=dict)
    variants: Dict[str, List[str]] = field(default_factory=dict)
    seeds: List[int] = field(default_factory=list)
    seed_keys: List[str] = field(default_factory=lambda: ["trainer.seed", "data.seed"])
    baseline: str = ""
    compare: List[List[str]] = field(default_factory=list)
    overrides: List[str] = field(default_factory=list)
    parallel: int = 1
    threads_per_run: int = 1
    checkpoint_every: int = 10
    keep_checkpoints: bool = False
    metrics: List[MetricSpec] = field(default_factory=lambda: [
        MetricSpec("eval/success", "final"), MetricSpec("eval/reward", "final"),
        MetricSpec("train/success", "last"), MetricSpec("dipo/frac_nonzero_adv", "mean"),
        MetricSpec("actor/entropy", "last"), MetricSpec("actor/entropy", "change"),
        MetricSpec("dipo/mean_log_ppl_right", "last"), MetricSpec("dipo/mean_log_ppl_wrong", "last"),
    ])
    reach: List[ReachSpec] = field(default_factory=list)
    predictions: List[Prediction] = field(default_factory=list)
    curves: List[str] = field(default_factory=lambda: [
        "eval/success", "eval/reward", "train/success", "dipo/frac_nonzero_adv", "actor/entropy",
        "dipo/mean_log_ppl_right", "dipo/mean_log_ppl_wrong",
    ])
    smooth: int = 5
    confidence: float = 0.95
    # where the file was read from (set by load_sweep; relative task configs may live next to it)
    source: Optional[str] = None

    # ------------------------------------------------------------------ derived
    def run_overrides(self, task: str, variant: str, seed: int) -> list[str]:
        """The ``dipo train`` overrides of one run (its task config is ``tasks[task].config``)."""
        return [*self.tasks[task].overrides, *self.overrides, *self.variants[variant],
                *(f"{k}={seed}" for k in self.seed_keys)]

    def all_pairs(self) -> list[tuple[str, str]]:
        """Every tested ``(variant, against)`` pair: each variant vs the baseline, then ``compare``."""
        pairs = [(v, self.baseline) for v in self.variants if v != self.baseline]
        for a, b in self.compare:
            if (a, b) not in pairs:
                pairs.append((a, b))
        for p in self.predictions:
            if (p.variant, p.against) not in pairs:
                pairs.append((p.variant, p.against))
        return pairs

    def reach_of(self, task: str | None) -> list["ReachSpec"]:
        return [*self.reach, *(self.tasks[task].reach if task in self.tasks else ())]

    def columns(self, task: str | None = None) -> list[str]:
        """Columns of one task's table (``None``: the columns every task has)."""
        return [m.column for m in self.metrics] + [r.column for r in self.reach_of(task)]

    def all_columns(self) -> list[str]:
        cols = self.columns()
        for t in self.tasks:
            cols += [c for c in self.columns(t) if c not in cols]
        return cols


def _where(source: str, field_name: str) -> str:
    return f"{source}: {field_name}"


def _check(cond: bool, source: str, field_name: str, problem: str, fix: str) -> None:
    if not cond:
        raise SweepError(f"{_where(source, field_name)}: {problem}; {fix}")


def validate(spec: SweepSpec) -> SweepSpec:
    """Check the whole grid before any work; raise :class:`SweepError` naming the field and the fix."""
    src = spec.source or "<sweep>"
    _check(bool(spec.name) and bool(_NAME.match(spec.name)), src, "name", f"{spec.name!r} is not a usable name",
           "use letters, digits, '_', '-' or '.'")
    _check(bool(spec.tasks), src, "tasks", "no tasks", "add e.g. `tasks: {inventory: {config: configs/local/demo.yaml}}`")
    _check(bool(spec.variants), src, "variants", "no variants", "add e.g. `variants: {grpo: [algorithm.name=grpo]}`")
    _check(bool(spec.seeds), src, "seeds", "no seeds", "add e.g. `seeds: [0, 1, 2, 3, 4]`")
    _check(len(set(spec.seeds)) == len(spec.seeds), src, "seeds", f"{spec.seeds} has duplicates", "list each seed once")
    for kind, names in (("tasks", spec.tasks), ("variants", spec.variants)):
        for n in names:
            _check(bool(_NAME.match(str(n))), src, f"{kind}.{n}", "is not a usable folder name",
                   "use letters, digits, '_', '-' or '.'")
    for t, ts in spec.tasks.items():
        _check(bool(ts.config), src, f"tasks.{t}.config", "is missing", "give a local-engine YAML, e.g. configs/local/demo.yaml")
    for scope, items in [("overrides", spec.overrides)] + [(f"tasks.{t}.overrides", ts.overrides) for t, ts in spec.tasks.items()] \
            + [(f"variants.{v}", o) for v, o in spec.variants.items()]:
        for o in items:
            _check(isinstance(o, str) and "=" in o, src, scope, f"{o!r} is not key=value", "write e.g. algorithm.name=grpo")
            _check(o.split("=", 1)[0] not in ("trainer.output_dir", "trainer.resume", *spec.seed_keys), src, scope,
                   f"{o!r} sets a key the sweep owns", "remove it (the sweep sets output dirs, resume and seeds)")
    _check(spec.baseline in spec.variants, src, "baseline", f"{spec.baseline!r} is not a variant",
           f"name one of {sorted(spec.variants)}")
    for i, pair in enumerate(spec.compare):
        _check(len(pair) == 2 and all(p in spec.variants for p in pair) and pair[0] != pair[1], src, f"compare[{i}]",
               f"{pair!r} is not a pair of two different variants", f"use two of {sorted(spec.variants)}")
    _check(spec.parallel >= 1, src, "parallel", f"{spec.parallel} must be >= 1", "run at least one at a time")
    _check(spec.threads_per_run >= 1, src, "threads_per_run", f"{spec.threads_per_run} must be >= 1",
           "use 1 per core available to each run")
    _check(spec.checkpoint_every >= 0, src, "checkpoint_every", "must be >= 0", "use 0 for only-at-the-end")
    _check(0.5 < spec.confidence < 1, src, "confidence", f"{spec.confidence} is not in (0.5, 1)", "use e.g. 0.95")
    _check(spec.smooth >= 1, src, "smooth", "must be >= 1", "use 1 for no smoothing")
    for i, m in enumerate(spec.metrics):
        _check(bool(m.key), src, f"metrics[{i}].key", "is missing", "name a logged metric, e.g. eval/success")
        _check(m.stat in STATS, src, f"metrics[{i}].stat", f"{m.stat!r} is not allowed", f"use one of {list(STATS)}")
        _check(m.window >= 1, src, f"metrics[{i}].window", "must be >= 1", "average at least one value")
    for where, items in [("reach", spec.reach)] + [(f"tasks.{t}.reach", ts.reach) for t, ts in spec.tasks.items()]:
        for i, r in enumerate(items):
            _check(bool(r.key) and r.window >= 1, src, f"{where}[{i}]", "needs a key and a window >= 1",
                   "write e.g. {key: train/success, level: 0.6, window: 5}")
    for t in spec.tasks:
        columns = spec.columns(t)
        _check(len(set(columns)) == len(columns), src, "metrics", f"two columns of task {t} are the same "
               "(key and stat, or reach key and level)", "remove the duplicate")
    columns = spec.all_columns()
    for i, p in enumerate(spec.predictions):
        _check(p.variant in spec.variants and p.against in spec.variants, src, f"predictions[{i}]",
               f"{p.variant!r}/{p.against!r} must both be variants", f"use names among {sorted(spec.variants)}")
        _check(p.column in columns, src, f"predictions[{i}].column", f"{p.column!r} is not a results column",
               f"use one of {columns}")
        _check(p.sign in ("+", "-"), src, f"predictions[{i}].sign", f"{p.sign!r} is not + or -", "write '+' or '-'")
    return spec


def resolve_path(path: str, source: str | None) -> str:
    """A config path as given, relative to the working directory, else relative to the sweep file."""
    candidates = [path] if os.path.isabs(path) else [os.path.abspath(path)]
    if source and not os.path.isabs(path):
        candidates.append(os.path.abspath(os.path.join(os.path.dirname(source), path)))
    for c in candidates:
        if os.path.exists(c):
            return c
    raise SweepError(f"{source or '<sweep>'}: task config {path!r} not found (looked at {', '.join(candidates)}); "
                     "give a path relative to the working directory or to the sweep file")


def load_sweep(path: str, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read and validate a sweep file; ``overrides`` are ``key=value`` on the sweep itself (e.g. ``parallel=2``)."""
    if not os.path.exists(path):
        raise SweepError(f"sweep file {path} does not exist")
    try:
        raw = OmegaConf.load(path)
        merged = OmegaConf.merge(OmegaConf.structured(SweepSpec), raw)
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise SweepError(f"sweep override {bad[0]!r} must look like key=value (e.g. parallel=2)")
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        spec: SweepSpec = OmegaConf.to_object(merged)
    except SweepError:
        raise
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        first = str(e).splitlines()[0]
        raise SweepError(f"{path}: field '{key}': {first}; see dipo_tools/sweep/spec.py (SweepSpec) for the fields") from None
    spec.source = os.path.abspath(path)
    if not spec.name:
        spec.name = os.path.splitext(os.path.basename(path))[0]
    if not spec.output_dir:
        spec.output_dir = os.path.join("outputs", "sweeps", spec.name)
    for ts in spec.tasks.values():
        ts.config = resolve_path(ts.config, spec.source)
    return validate(spec)


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (configs, job descriptions)."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def spec_dict(spec: SweepSpec) -> dict:
    return dataclasses.asdict(spec)
