"""Plan and run a sweep: warm-ups and trainings as subprocesses with bounded parallelism, resumable.

Every job moves through one state machine, kept in memory and mirrored on disk by its job folder::

    PENDING --(its warm-up is DONE)--> READY --(a slot is free)--> RUNNING --(exit 0)--> DONE
                                                                           \\--(exit != 0)--> FAILED
    PENDING --(its warm-up FAILED)--> BLOCKED
    PENDING --(a warm-up whose runs are all DONE)--> UNNEEDED

On disk a job is DONE when its folder holds ``done.json``; nothing else counts, so an interrupted job
(killed, crashed, machine rebooted) is simply run again and resumes from its newest checkpoint. A job
folder whose ``job.json`` describes a different configuration is refused, never silently reused.
A warm-up is only run for runs that still need it: finished runs copied in from elsewhere (``--export``)
do not bring their multi-minute warm-ups back.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import yaml
from tqdm.auto import tqdm

from dipo_tools.engines.config import ConfigError, config_to_dict, load_config
from dipo_tools.engines.metrics import read_metrics, series
from dipo_tools.sweep.spec import REPO_ROOT, SweepError, SweepSpec, fingerprint, spec_dict
from dipo_tools.sweep.layout import DONE_FILE, EXIT_LOCKED, JOB_FILE, PLOTS_DIR, REPORT_FILES

CONFIG_FILE = "config.yaml"
PENDING, READY, RUNNING, DONE, FAILED, BLOCKED = "pending", "ready", "running", "done", "failed", "blocked"
UNNEEDED = "unneeded"  # a warm-up whose runs are all finished
SETTLED = (DONE, UNNEEDED)  # nothing left to do for the job
FINISHED = (*SETTLED, FAILED, BLOCKED)
# What a finished job's record is: enough to rebuild the report and to resume the sweep around it.
RECORD_FILES = (JOB_FILE, DONE_FILE, "metrics.jsonl", CONFIG_FILE)
# Config sections that decide the warm-up's result: runs that agree on them share one warm-up.
WARMUP_SECTIONS = ("model", "data", "sft", "rollout")


@dataclass
class Job:
    kind: str  # "warmup" | "train"
    label: str  # task/variant/seed_N or task/warmup/seed_N
    dir: str
    config: str
    overrides: list[str]
    fingerprint: str
    task: str
    seed: int
    variant: str | None = None
    total_steps: int = 0
    warmup: "Job | None" = None
    resolved: dict = field(default_factory=dict, repr=False)  # the run's full configuration
    state: str = PENDING
    proc: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0
    log_fh: object | None = field(default=None, repr=False)

    def description(self, threads: int, checkpoint_every: int, keep_checkpoints: bool) -> dict:
        # the worker reads the resolved copy, so editing a task config mid-sweep cannot leak into a run
        return {"kind": self.kind, "label": self.label, "config": os.path.join(self.dir, CONFIG_FILE),
                "source_config": self.config, "overrides": self.overrides,
                "warmup": self.warmup.dir if self.warmup else None, "threads": threads,
                "checkpoint_every": checkpoint_every, "keep_checkpoints": keep_checkpoints,
                "fingerprint": self.fingerprint}


def _resolved(config: str, overrides: list[str], threads: int) -> dict:
    """The run's full validated configuration (``ConfigError`` names the file and key on a mistake)."""
    cfg = config_to_dict(load_config(config, [*overrides, f"trainer.torch_threads={threads}"]))
    cfg["trainer"].pop("output_dir")
    return cfg


def plan(spec: SweepSpec, only_tasks=None, only_variants=None, only_seeds=None) -> list[Job]:
    """Every job of the grid, warm-ups first within each seed; seed-major so that stopping early still leaves
    complete paired sets. ``only_*`` restrict the grid (to run a study in parts)."""
    out = os.path.abspath(spec.output_dir)
    jobs: list[Job] = []
    warmups: dict[tuple, Job] = {}
    for seed in spec.seeds:
        if only_seeds is not None and seed not in only_seeds:
            continue
        for task, ts in spec.tasks.items():
            if only_tasks is not None and task not in only_tasks:
                continue
            for variant in spec.variants:
                if only_variants is not None and variant not in only_variants:
                    continue
                overrides = spec.run_overrides(task, variant, seed)
                try:
                    cfg = _resolved(ts.config, overrides, spec.threads_per_run)
                except ConfigError as e:
                    raise SweepError(f"{spec.source}: run {task}/{variant}/seed {seed}: {e}") from None
                wkey = fingerprint({k: cfg[k] for k in WARMUP_SECTIONS} | {"seed": cfg["trainer"]["seed"],
                                                                        "threads": spec.threads_per_run})
                warm = warmups.get((task, wkey))
                if warm is None and cfg["sft"]["steps"] > 0:
                    name = f"seed_{seed}-{wkey[:8]}"  # runs of one seed that change e.g. sft.* get their own
                    warm = Job("warmup", f"{task}/warmup/{name}", os.path.join(out, "warmup", task, name),
                               ts.config, overrides, wkey, task, seed, resolved=cfg)
                    warmups[(task, wkey)] = warm
                    jobs.append(warm)
                run_fp = fingerprint({"config": cfg, "warmup": warm.fingerprint if warm else None})
                jobs.append(Job("train", f"{task}/{variant}/seed_{seed}",
                                os.path.join(out, "runs", task, variant, f"seed_{seed}"), ts.config, overrides,
                                run_fp, task, seed, variant, cfg["trainer"]["total_steps"], warm, resolved=cfg))
    return jobs


def prepare(spec: SweepSpec, jobs: list[Job]) -> None:
    """Create job folders, refuse ones made for another configuration, mark finished jobs DONE."""
    for job in jobs:
        os.makedirs(job.dir, exist_ok=True)
        path = os.path.join(job.dir, JOB_FILE)
        desc = job.description(spec.threads_per_run, spec.checkpoint_every, spec.keep_checkpoints)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                old = json.load(fh)
            if old.get("fingerprint") != job.fingerprint:
                raise SweepError(
                    f"{job.dir} holds a {job.kind} job made with another configuration (fingerprint "
                    f"{old.get('fingerprint')} != {job.fingerprint}); use a new output_dir for a changed sweep, "
                    "or delete that folder to recompute it")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(desc, fh, indent=1)
        with open(os.path.join(job.dir, CONFIG_FILE), "w", encoding="utf-8") as fh:
            yaml.safe_dump(job.resolved, fh, sort_keys=False)
        if os.path.exists(os.path.join(job.dir, DONE_FILE)):
            job.state = DONE
            job.seconds = _done_info(job).get("seconds", 0.0)
    for warm in (j for j in jobs if j.kind == "warmup" and j.state != DONE):
        if all(j.state == DONE for j in jobs if j.warmup is warm):
            warm.state = UNNEEDED
    with open(os.path.join(os.path.abspath(spec.output_dir), "sweep.json"), "w", encoding="utf-8") as fh:
        json.dump(spec_dict(spec), fh, indent=1, default=str)


def _done_info(job: Job) -> dict:
    try:
        with open(os.path.join(job.dir, DONE_FILE), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError):
        return {}


def _steps_logged(job: Job) -> int:
    """The newest RL step in the job's metrics file (its live progress)."""
    path = os.path.join(job.dir, "metrics.jsonl")
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 65536))
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Estimator:
    """Remaining wall time from measured ones: per task, the mean wall time of a warm-up and of a run (scaled
    by the steps a run has left), divided among the parallel slots."""

    def __init__(self, spec: SweepSpec) -> None:
        self.parallel = spec.parallel
        self.seconds: dict[tuple[str, str], list[float]] = {}
        # pilot measurements from the sweep file, used until this sweep has measured its own
        self.prior = {("warmup", t): ts.expected_warmup_seconds for t, ts in spec.tasks.items()}
        self.prior.update({("train", t): ts.expected_run_seconds for t, ts in spec.tasks.items()})

    def observe(self, job: Job, seconds: float) -> None:
        if seconds > 0:
            self.seconds.setdefault((job.kind, job.task), []).append(seconds)

    def _avg(self, kind: str, task: str) -> float | None:
        vals = self.seconds.get((kind, task))
        if not vals and self.prior.get((kind, task)):
            return self.prior[(kind, task)]
        vals = vals or [v for (k, _), vs in self.seconds.items() if k == kind for v in vs]
        return sum(vals) / len(vals) if vals else None

    def remaining(self, jobs: list[Job]) -> float | None:
        total = 0.0
        for j in jobs:
            if j.state in FINISHED:
                continue
            per = self._avg(j.kind, j.task)
            if per is None:
                return None
            if j.state != RUNNING:
                total += per
            elif j.kind == "warmup":
                total += max(per - (time.time() - j.started), 0.0)
            else:
                total += per * max(1 - _steps_logged(j) / max(j.total_steps, 1), 0.0)
        return total / self.parallel


def _summary_line(job: Job, n_done: int, n_total: int, eta: float | None) -> str:
    info = _done_info(job)
    parts = [f"[sweep] {job.label} done in {_fmt_time(info.get('seconds', job.seconds))}"]
    if job.kind == "warmup":
        if info.get("sft_final_loss") is not None:
            parts.append(f"warm-up loss {info['sft_final_loss']:.3f}")
    else:
        try:
            rows = read_metrics(os.path.join(job.dir, "metrics.jsonl"))
        except OSError:
            rows = []
        _, succ = series(rows, "eval/success")
        if succ:
            parts.append(f"held-out success {succ[0]:.3f} -> {succ[-1]:.3f}")
        _, rew = series(rows, "eval/reward")
        if rew:
            parts.append(f"reward {rew[-1]:.3f}")
        _, ent = series(rows, "actor/entropy")
        if ent:
            parts.append(f"entropy {ent[0]:.3f} -> {ent[-1]:.3f}")
        _, nz = series(rows, "dipo/frac_nonzero_adv")
        if nz:
            parts.append(f"non-zero adv {sum(nz) / len(nz):.2f}")
    parts.append(f"({n_done}/{n_total}{', ETA ' + _fmt_time(eta) if eta is not None else ''})")
    return parts[0] + ": " + ", ".join(parts[1:-1]) + " " + parts[-1] if len(parts) > 2 else " ".join(parts)


def _launch(job: Job, spec: SweepSpec) -> None:
    env = dict(os.environ)
    threads = str(spec.threads_per_run)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    # the worker must import this same code tree, wherever the sweep was started from
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    job.log_fh = open(os.path.join(job.dir, "log.txt"), "a", encoding="utf-8")
    job.log_fh.write(f"\n===== attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
    job.log_fh.flush()
    job.proc = subprocess.Popen([sys.executable, "-m", "dipo_tools.sweep.worker", job.dir], stdout=job.log_fh,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    job.started = time.time()
    job.state = RUNNING


def _tail(path: str, n: int = 8) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-n:])
    except OSError:
        return ""


class Interrupted(Exception):
    """The sweep was stopped (Ctrl-C / SIGTERM); running jobs were stopped and will resume next time."""


def execute(spec: SweepSpec, jobs: list[Job], progress: bool = True, echo: Callable[[str], None] | None = None,
            poll_seconds: float = 0.5) -> dict:
    """Run every job not yet DONE. Returns counts per final state; raises :class:`Interrupted` on a signal."""
    est = Estimator(spec)
    for j in jobs:
        if j.state == DONE:
            est.observe(j, _done_info(j).get("seconds", 0.0))
    n_total = len(jobs)
    overall = tqdm(total=n_total, initial=sum(j.state in SETTLED for j in jobs), desc=f"sweep {spec.name}",
                   unit="job", position=0, dynamic_ncols=True, disable=not progress)
    say = echo or (overall.write if progress else print)
    bars: dict[str, object] = {}
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            if stop["signal"] is not None:
                raise Interrupted()
            for j in jobs:  # dependencies
                if j.state == PENDING:
                    if j.warmup is None or j.warmup.state == DONE:
                        j.state = READY
                    elif j.warmup.state in (FAILED, BLOCKED):
                        j.state = BLOCKED
                        say(f"[sweep] {j.label} skipped: its warm-up {j.warmup.label} failed")
            running = [j for j in jobs if j.state == RUNNING]
            for j in jobs:
                if len(running) >= spec.parallel:
                    break
                if j.state == READY:
                    _launch(j, spec)
                    running.append(j)
                    if progress:
                        bars[j.label] = tqdm(total=j.total_steps if j.kind == "train" else None, desc=j.label,
                                             unit="step", position=len(bars) + 1, leave=False, dynamic_ncols=True)
            for j in running:
                rc = j.proc.poll()
                if j.kind == "train" and j.label in bars:
                    bar = bars[j.label]
                    bar.n = _steps_logged(j)
                    bar.refresh()
                if rc is None:
                    continue
                j.seconds = time.time() - j.started
                j.log_fh.close()
                if j.label in bars:
                    bars.pop(j.label).close()
                if rc == 0 and os.path.exists(os.path.join(j.dir, DONE_FILE)):
                    j.state = DONE
                    est.observe(j, j.seconds)
                    overall.update(1)
                    say(_summary_line(j, sum(x.state in SETTLED for x in jobs), n_total, est.remaining(jobs)))
                else:
                    j.state = FAILED
                    why = "is being run by another process" if rc == EXIT_LOCKED else f"failed (exit {rc})"
                    say(f"[sweep] {j.label} {why}; log {os.path.join(j.dir, 'log.txt')}:\n"
                        + _tail(os.path.join(j.dir, "log.txt")))
            eta = est.remaining(jobs)
            overall.set_postfix_str(f"running {sum(j.state == RUNNING for j in jobs)}, "
                                    f"ETA {_fmt_time(eta) if eta is not None else 'after the first jobs'}")
            if all(j.state in FINISHED for j in jobs):
                break
            time.sleep(poll_seconds)
    except BaseException:
        _stop_all(jobs)
        raise
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        for b in bars.values():
            b.close()
        overall.close()
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.state] = counts.get(j.state, 0) + 1
    return counts


def _stop_all(jobs: list[Job]) -> None:
    """Stop the workers we started (their process groups), give them a moment, then kill what is left."""
    live = [j for j in jobs if j.state == RUNNING and j.proc is not None and j.proc.poll() is None]
    for j in live:
        try:
            os.killpg(j.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10
    for j in live:
        try:
            j.proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(j.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            j.proc.wait()
    for j in jobs:
        if j.state == RUNNING:
            j.state = PENDING
            if j.log_fh is not None and not j.log_fh.closed:
                j.log_fh.close()


def describe(spec: SweepSpec, jobs: list[Job]) -> list[str]:
    """Human-readable plan: counts, what is done, and an estimate when finished jobs give a speed."""
    est = Estimator(spec)
    for j in jobs:
        if j.state == DONE:
            est.observe(j, _done_info(j).get("seconds", 0.0))
    trains = [j for j in jobs if j.kind == "train"]
    warms = [j for j in jobs if j.kind == "warmup"]
    n = [len({getattr(j, k) for j in trains}) for k in ("task", "variant", "seed")]
    n_unneeded = sum(j.state == UNNEEDED for j in warms)
    lines = [f"sweep {spec.name}: {n[0]} task(s) x {n[1]} variant(s) x {n[2]} seed(s) = {len(trains)} runs + "
             f"{len(warms)} warm-ups; {spec.parallel} at a time, {spec.threads_per_run} thread(s) each",
             f"output: {os.path.abspath(spec.output_dir)}",
             f"done: {sum(j.state == DONE for j in trains)}/{len(trains)} runs, "
             f"{sum(j.state == DONE for j in warms)}/{len(warms)} warm-ups"
             + (f" ({n_unneeded} not needed: their runs are finished)" if n_unneeded else "")]
    eta = est.remaining(jobs)
    lines.append(f"estimated remaining wall time: {_fmt_time(eta)}" if eta is not None else
                 "estimated remaining wall time: unknown until a warm-up and a run of each task have finished")
    for j in trains:
        lines.append(f"  {j.state:8s} {j.label}: {j.total_steps} steps, overrides {' '.join(j.overrides)}")
    return lines


def export_records(jobs: list[Job], spec: SweepSpec, dest: str) -> int:
    """Copy the record of every finished job (its job, done, metrics and config files; no checkpoints, no
    weights) into ``dest`` under the sweep's own layout, with the report files when present. Returns how many
    jobs were copied. Copying ``dest``'s ``runs/`` back into an output_dir resumes the sweep around them."""
    out = os.path.abspath(spec.output_dir)
    n = 0
    for job in jobs:
        if job.kind != "train" or not os.path.exists(os.path.join(job.dir, DONE_FILE)):
            continue
        target = os.path.join(dest, os.path.relpath(job.dir, out))
        os.makedirs(target, exist_ok=True)
        for name in RECORD_FILES:
            if os.path.exists(os.path.join(job.dir, name)):
                shutil.copyfile(os.path.join(job.dir, name), os.path.join(target, name))
        n += 1
    for name in REPORT_FILES:
        if os.path.exists(os.path.join(out, name)):
            shutil.copyfile(os.path.join(out, name), os.path.join(dest, name))
    if os.path.isdir(os.path.join(out, PLOTS_DIR)):
        shutil.copytree(os.path.join(out, PLOTS_DIR), os.path.join(dest, PLOTS_DIR), dirs_exist_ok=True)
    return n
