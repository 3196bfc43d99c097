"""`dipo sweep` end to end on a 2-variant x 2-seed grid of 3-step runs: the table, the pairing, resume
after an interruption (Ctrl-C), and that a sweep run is bitwise the same as `dipo train` of its config."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dipo_tools.cli import main

SYSTEM = "Tools: add_stock(item, quantity), remove_stock(item, quantity), check_stock(item), list_items()."
TASK = f"""
engine: local
model: {{preset: test, vocab_size: 400}}
data: {{env: inventory, num_train: 16, num_eval: 6}}
rollout:
  tasks_per_step: 2
  group_size: 4
  max_new_tokens: 24
  max_response_tokens: 96
  system_prompt: "{SYSTEM}"
  runner: {{pass_tools_to_template: false}}
algorithm: {{dipo: {{min_side: 2}}}}
actor: {{lr: 1.0e-3}}
sft: {{steps: 3, batch_size: 8}}
trainer: {{total_steps: 3, eval_every: 2}}
"""
SWEEP = """
name: ci
output_dir: {out}
tasks:
  inv: {{config: task.yaml}}
variants:
  grpo: [algorithm.name=grpo]
  dipo: [algorithm.name=dipo, algorithm.dipo.gate=none]
seeds: [0, 1]
baseline: grpo
parallel: 2
checkpoint_every: 1
reach: [{{key: train/reward, level: 0.05, window: 1}}]
predictions: [{{variant: dipo, against: grpo, column: dipo/frac_nonzero_adv@mean, sign: "+", note: BRR}}]
"""
RUNS = [("grpo", 0), ("dipo", 0), ("grpo", 1), ("dipo", 1)]


def _rows(path):
    return [json.loads(line) for line in open(path)]


def _without_timings(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Start the sweep, stop it with SIGINT as soon as one run has finished, then run it again to the end."""
    root = tmp_path_factory.mktemp("sweep")
    out = root / "out"
    (root / "task.yaml").write_text(TASK)
    (root / "sweep.yaml").write_text(SWEEP.format(out=out))
    cmd = [sys.executable, "-m", "dipo_tools.cli", "sweep", "--config", str(root / "sweep.yaml"), "--no-progress"]
    first = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = lambda v, s: out / "runs" / "inv" / v / f"seed_{s}" / "done.json"  # noqa: E731

    def worker_pid(v, s):
        """The pid of the worker process running that job, or None."""
        job_dir = str(out / "runs" / "inv" / v / f"seed_{s}").encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"dipo_tools.sweep.worker" in argv and job_dir in argv:
                return int(pid)
        return None

    # Interrupt while one run is finished and another is mid-way. A 3-step run trains in under a second, so a
    # run seen "running" may finish before the sweep acts on the signal: freeze it first (SIGSTOP), and the
    # sweep's stop (SIGTERM, then SIGKILL after 10 s) surely interrupts it.
    deadline = time.time() + 600
    frozen = None
    while frozen is None and first.poll() is None and time.time() < deadline:
        if any(done(v, s).exists() for v, s in RUNS):
            for v, s in RUNS:
                pid = worker_pid(v, s)
                if pid is not None and not done(v, s).exists():
                    os.kill(pid, signal.SIGSTOP)
                    if done(v, s).exists():  # it finished just before the freeze
                        os.kill(pid, signal.SIGCONT)
                        continue
                    frozen = (v, s)
                    break
        time.sleep(0.1)
    assert frozen is not None, "no run was caught mid-way"
    first.send_signal(signal.SIGINT)
    first_out, _ = first.communicate(timeout=120)
    finished_first = {(v, s): done(v, s).read_text() for v, s in RUNS if done(v, s).exists()}
    second = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)
    return {"root": root, "out": out, "first": first, "first_out": first_out, "second": second,
            "finished_first": finished_first, "done": done}


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_recomputing_finished_runs(sweep):
    assert sweep["first"].returncode == 130, sweep["first_out"]
    assert "Run the same command again to resume" in sweep["first_out"]
    assert sweep["second"].returncode == 0, sweep["second"].stdout + sweep["second"].stderr
    assert 1 <= len(sweep["finished_first"]) < len(RUNS)
    for (v, s), text in sweep["finished_first"].items():  # never recomputed
        assert sweep["done"](v, s).read_text() == text
        assert open(sweep["out"] / "runs" / "inv" / v / f"seed_{s}" / "log.txt").read().count("attempt started") == 1
    attempts = []
    for v, s in RUNS:
        run = sweep["out"] / "runs" / "inv" / v / f"seed_{s}"
        assert [r["step"] for r in _rows(run / "metrics.jsonl")] == [0, 1, 2, 3]  # no step lost or logged twice
        assert not (run / "checkpoints").exists()  # keep_checkpoints: false
        attempts.append(open(run / "log.txt").read().count("attempt started"))
    assert max(attempts) == 2  # the run stopped by the interruption was run again
    assert "(6/6, ETA" in sweep["second"].stdout  # summary line of the last of 4 runs + 2 warm-ups


@pytest.mark.slow
def test_a_sweep_run_is_bitwise_dipo_train_of_its_config(sweep):
    """Parallel, warm-up in another process, even an interrupted-and-resumed run: same metrics as one process."""
    import torch

    from dipo_tools.engines.config import load_config
    from dipo_tools.engines.local import run_training

    out = sweep["out"]
    resumed = [(v, s) for v, s in RUNS
               if open(out / "runs" / "inv" / v / f"seed_{s}" / "log.txt").read().count("attempt started") == 2]
    variant, seed = resumed[0]
    overrides = {"grpo": ["algorithm.name=grpo"], "dipo": ["algorithm.name=dipo", "algorithm.dipo.gate=none"]}[variant]
    threads = torch.get_num_threads()
    try:
        cfg = load_config(str(sweep["root"] / "task.yaml"), [
            *overrides, f"trainer.seed={seed}", f"data.seed={seed}", "trainer.torch_threads=1",
            f"trainer.output_dir={sweep['root'] / 'direct'}", "trainer.progress=false", "trainer.tensorboard=false",
            "trainer.plots=false"])
        run_training(cfg)
    finally:
        torch.set_num_threads(threads)
    direct = _without_timings(_rows(sweep["root"] / "direct" / "metrics.jsonl"))
    assert _without_timings(_rows(out / "runs" / "inv" / variant / f"seed_{seed}" / "metrics.jsonl")) == direct


@pytest.mark.slow
def test_table_pairs_variants_by_seed(sweep):
    out = sweep["out"]
    rows = {(v, s): _rows(out / "runs" / "inv" / v / f"seed_{s}" / "metrics.jsonl") for v, s in RUNS}
    # same seed = same warmed-up weights, tasks and sampling: the first batch (sampled before any update) and
    # the step-0 evaluation are identical across variants, and differ between seeds
    for s in (0, 1):
        for key in ("train/reward", "train/response_tokens", "dipo/frac_hard"):
            assert rows[("grpo", s)][1][key] == rows[("dipo", s)][1][key]
        assert _without_timings(rows[("grpo", s)][:1]) == _without_timings(rows[("dipo", s)][:1])
    assert rows[("grpo", 0)][1]["train/response_tokens"] != rows[("grpo", 1)][1]["train/response_tokens"]

    runs = _csv(out / "runs.csv")
    assert sorted((r["variant"], int(r["seed"])) for r in runs) == sorted(RUNS)
    col = "dipo/frac_nonzero_adv@mean"
    value = {(r["variant"], int(r["seed"])): float(r[col]) for r in runs}
    mean_nz = sum(r["dipo/frac_nonzero_adv"] for r in rows[("dipo", 0)][1:]) / 3
    assert value[("dipo", 0)] == pytest.approx(mean_nz, rel=1e-5)
    results = {(r["variant"], r["column"]): r for r in _csv(out / "results.csv")}
    assert int(results[("dipo", col)]["n"]) == 2
    paired = {(r["variant"], r["against"], r["column"]): r for r in _csv(out / "paired.csv")}
    p = paired[("dipo", "grpo", col)]
    diffs = [value[("dipo", s)] - value[("grpo", s)] for s in (0, 1)]
    assert int(p["n_pairs"]) == 2 and float(p["mean_diff"]) == pytest.approx(sum(diffs) / 2, rel=1e-5)
    assert int(p["wins"]) == sum(d > 0 for d in diffs)
    # GRPO never reallocates; DiPO with gate=none reallocates every extreme group of an untrained model
    assert all(value[("grpo", s)] <= value[("dipo", s)] for s in (0, 1)) and sum(diffs) > 0
    md = open(out / "RESULTS.md").read()
    assert "paired t-test" in md and "`dipo` − `grpo`" in md and "plots/inv_paired.png" in md
    assert "(BRR)" in md and os.path.exists(out / "plots" / "inv_eval_success.png")
    assert "steps_to[train/reward>=0.05]" in md


@pytest.mark.slow
def test_dry_run_and_a_changed_config_is_refused(sweep, capsys):
    cfg = str(sweep["root"] / "sweep.yaml")
    assert main(["sweep", "--config", cfg, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "done: 4/4 runs, 2/2 warm-ups" in text and "estimated remaining wall time: 0m00s" in text
    assert main(["sweep", "--config", cfg, "--dry-run", "overrides=[actor.lr=0.002]"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "new output_dir" in err


@pytest.mark.slow
def test_exported_records_rebuild_the_report_and_resume_without_warmups(sweep, tmp_path, capsys):
    """`--export` keeps what a commit can hold (no weights); a fresh output_dir seeded with it is finished."""
    cfg = str(sweep["root"] / "sweep.yaml")
    export = tmp_path / "export"
    assert main(["sweep", "--config", cfg, "--report-only", "--export", str(export)]) == 0
    assert "exported 4 finished run record(s)" in capsys.readouterr().out
    files = {str(p.relative_to(export)) for p in export.rglob("*") if p.is_file()}
    assert {"runs/inv/dipo/seed_1/metrics.jsonl", "runs/inv/grpo/seed_0/done.json", "results.csv",
            "RESULTS.md", "plots/inv_eval_success.png"} <= files
    assert not any(f.endswith((".pt", ".safetensors")) or "checkpoints" in f or "warmup" in f for f in files)

    fresh = tmp_path / "fresh"
    os.makedirs(fresh)
    shutil.copytree(export / "runs", fresh / "runs")
    again = [cfg, f"output_dir={fresh}"]
    assert main(["sweep", "--config", again[0], again[1], "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "done: 4/4 runs, 0/2 warm-ups (2 not needed" in text and "remaining wall time: 0m00s" in text
    # a real run starts nothing (no warm-up is recomputed for finished runs) and rebuilds the same table
    assert main(["sweep", "--config", again[0], again[1], "--no-progress"]) == 0
    assert not (fresh / "warmup").exists() or not any((fresh / "warmup").rglob("log.txt"))
    assert _csv(fresh / "results.csv") == _csv(sweep["out"] / "results.csv")
    assert _csv(fresh / "paired.csv") == _csv(sweep["out"] / "paired.csv")
