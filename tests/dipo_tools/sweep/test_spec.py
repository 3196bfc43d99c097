"""Sweep files are validated before any work, with errors that name the file, the field and the fix."""
from __future__ import annotations

import pytest

from dipo_tools.sweep.runner import plan
from dipo_tools.sweep.spec import SweepError, load_sweep

BASE = """
name: s
tasks: {inv: {config: task.yaml}}
variants: {grpo: [algorithm.name=grpo], dipo: [algorithm.name=dipo]}
seeds: [0, 1]
baseline: grpo
"""


def _write(tmp_path, text, task="data: {env: inventory}\nsft: {steps: 2}\n"):
    (tmp_path / "task.yaml").write_text(task)
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def test_plan_shares_one_warmup_per_task_and_seed(tmp_path):
    spec = load_sweep(_write(tmp_path, BASE + "overrides: [trainer.total_steps=4]\n"))
    jobs = plan(spec)
    warm = [j for j in jobs if j.kind == "warmup"]
    runs = [j for j in jobs if j.kind == "train"]
    assert len(warm) == 2 and len(runs) == 4 and all(r.total_steps == 4 for r in runs)
    assert {r.warmup.label for r in runs if r.seed == 0} == {warm[0].label}  # both variants of seed 0 share it
    assert [r.label for r in runs] == ["inv/grpo/seed_0", "inv/dipo/seed_0", "inv/grpo/seed_1", "inv/dipo/seed_1"]
    assert runs[0].overrides[-2:] == ["trainer.seed=0", "data.seed=0"]
    # a variant that changes the warm-up gets its own
    spec = load_sweep(_write(tmp_path, BASE.replace("[algorithm.name=dipo]", "[algorithm.name=dipo, sft.steps=3]")))
    assert sum(j.kind == "warmup" for j in plan(spec)) == 4


@pytest.mark.parametrize("edit, field", [
    ("baseline: grpo", "baseline"),
    ("seeds: [0, 1]", "seeds"),
    ("variants: {grpo: [algorithm.name=grpo], dipo: [algorithm.name=dipo]}", "variants"),
])
def test_bad_fields_name_the_field(tmp_path, edit, field):
    bad = {"baseline": "baseline: ppo", "seeds": "seeds: [1, 1]",
           "variants": "variants: {grpo: [algorithm.name=grpo], dipo: [trainer.seed=3]}"}[field]
    with pytest.raises(SweepError, match=f"sweep.yaml: {field}"):
        load_sweep(_write(tmp_path, BASE.replace(edit, bad)))


def test_unknown_field_and_bad_run_config(tmp_path):
    with pytest.raises(SweepError, match="paralel"):
        load_sweep(_write(tmp_path, BASE + "paralel: 2\n"))
    with pytest.raises(SweepError, match="not found"):
        load_sweep(_write(tmp_path, BASE.replace("task.yaml", "nope.yaml")))
    spec = load_sweep(_write(tmp_path, BASE.replace("[algorithm.name=dipo]", "[algorithm.name=ppo]")))
    with pytest.raises(SweepError, match=r"run inv/dipo/seed 0: .*algorithm.name"):
        plan(spec)
    with pytest.raises(SweepError, match=r"predictions\[0\].column"):
        load_sweep(_write(tmp_path, BASE + "predictions: [{variant: dipo, against: grpo, column: nope, sign: '+'}]\n"))


def test_shipped_sweeps_plan_without_errors():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[3]
    files = sorted((root / "configs" / "sweeps").glob("*.yaml"))
    assert files
    for f in files:
        spec = load_sweep(str(f))
        runs = [j for j in plan(spec) if j.kind == "train"]
        assert len(runs) == len(spec.tasks) * len(spec.variants) * len(spec.seeds)
        assert len(spec.seeds) >= 5 and spec.baseline in spec.variants


def test_jobs_run_their_resolved_config_not_the_edited_source(tmp_path):
    import json

    from dipo_tools.engines.config import load_config
    from dipo_tools.sweep.runner import prepare
    from dipo_tools.sweep.worker import engine_overrides

    path = _write(tmp_path, BASE + f"output_dir: {tmp_path / 'out'}\n")
    spec = load_sweep(path)
    jobs = plan(spec)
    prepare(spec, jobs)
    (tmp_path / "task.yaml").write_text("data: {env: inventory}\nsft: {steps: 2}\nactor: {lr: 0.5}\n")  # edited mid-sweep
    run = next(j for j in jobs if j.label == "inv/dipo/seed_1")
    job = json.load(open(f"{run.dir}/job.json"))
    cfg = load_config(job["config"], engine_overrides(run.dir, job))
    assert (cfg.algorithm.name, cfg.trainer.seed, cfg.data.seed, cfg.actor.lr) == ("dipo", 1, 1, 3e-4)
    assert cfg.trainer.output_dir == run.dir and cfg.trainer.resume == "auto"
    with pytest.raises(SweepError, match="another configuration"):
        prepare(load_sweep(path), plan(load_sweep(path)))  # the edit changes every fingerprint: refused
