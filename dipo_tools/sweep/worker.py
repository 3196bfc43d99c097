"""One job of a sweep, in its own process: ``python -m dipo_tools.sweep.worker JOB_DIR``.

``JOB_DIR/job.json`` says what to do:

* ``warmup``: build the engine from the run's configuration, run the supervised warm-up, and save the
  weights and the random-number states to ``warmup.pt``. Every variant of a (task, seed) starts from it.
* ``train``: build the same engine, load the warm-up (or resume from the newest checkpoint), run RL.

A ``train`` job is exactly ``dipo train`` of the same configuration (warm-up, then RL in one process):
the warm-up saved the states a single process would have carried from warm-up into RL. ``done.json``
marks a finished job; a job directory holding it is never run again. A lock file keeps two sweeps from
running the same job at once.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import resource
import shutil
import sys
import time

import numpy as np
import torch

from dipo_tools.engines.config import load_config
from dipo_tools.engines.local import LocalEngine
from dipo_tools.engines.metrics import MetricsLogger
from dipo_tools.sweep.layout import DONE_FILE, EXIT_LOCKED, JOB_FILE, LOCK_FILE, WARMUP_FILE  # noqa: F401
from dipo_tools.sweep.spec import fingerprint


def _rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def _set_rng_states(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])


def _vocab_hash(tokenizer) -> str:
    return fingerprint(sorted(tokenizer.get_vocab().items()))


def _config(job: dict, job_dir: str):
    # job["config"] is the run's fully resolved configuration (the sweep wrote it; overrides already applied)
    return load_config(job["config"], engine_overrides(job_dir, job))


def engine_overrides(job_dir: str, job: dict) -> list[str]:
    """What the sweep sets on every run: where it writes, resume, threads, no per-run plots or TensorBoard."""
    return [f"trainer.output_dir={job_dir}", "trainer.resume=auto", f"trainer.torch_threads={job['threads']}",
            "trainer.progress=false", "trainer.tensorboard=false", "trainer.plots=false",
            f"trainer.save_every={job.get('checkpoint_every', 0)}", "trainer.keep_checkpoints=1"]


def run_warmup(job: dict, job_dir: str) -> dict:
    cfg = _config(job, job_dir)
    eng = LocalEngine(cfg, log=False)
    t0 = time.perf_counter()
    losses = eng.sft_warmup(progress=False)
    seconds = time.perf_counter() - t0
    tmp = os.path.join(job_dir, WARMUP_FILE + ".tmp")
    torch.save({"model": eng.model.state_dict(), "rng": _rng_states(), "sft_losses": losses,
                "vocab_hash": _vocab_hash(eng.tokenizer)}, tmp)
    os.replace(tmp, os.path.join(job_dir, WARMUP_FILE))
    print(f"[sweep] warm-up: {len(losses)} steps in {seconds:.0f}s, loss "
          f"{losses[0] if losses else float('nan'):.3f} -> {losses[-1] if losses else float('nan'):.3f}", flush=True)
    return {"sft_steps": len(losses), "sft_final_loss": losses[-1] if losses else None, "sft_seconds": seconds}


def _keep_rows_up_to(path: str, step: int | None) -> None:
    """Drop metric rows a crashed attempt logged after the checkpoint we resume from (or all of them)."""
    if not os.path.exists(path):
        return
    if step is None:
        os.remove(path)
        return
    with open(path, encoding="utf-8") as fh:
        rows = [line for line in fh if line.strip() and json.loads(line)["step"] <= step]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(rows)
    os.replace(tmp, path)


def run_train(job: dict, job_dir: str) -> dict:
    cfg = _config(job, job_dir)
    eng = LocalEngine(cfg, log=False)
    ckpt = eng.latest_checkpoint()
    resumed_at = None
    if ckpt is not None:
        resumed_at = int(torch.load(os.path.join(ckpt, "state.pt"), map_location="cpu", weights_only=False)["step"])
    metrics_path = os.path.join(job_dir, "metrics.jsonl")
    _keep_rows_up_to(metrics_path, resumed_at)
    if ckpt is None and job.get("warmup"):
        warm = torch.load(os.path.join(job["warmup"], WARMUP_FILE), map_location="cpu", weights_only=False)
        if warm["vocab_hash"] != _vocab_hash(eng.tokenizer):
            raise RuntimeError(f"the tokenizer rebuilt for {job_dir} differs from the warm-up's in {job['warmup']}; "
                               "delete the warm-up folder so that it is made again with this code")
        eng.model.load_state_dict(warm["model"])
        _set_rng_states(warm["rng"])
    eng.logger = MetricsLogger(job_dir, tensorboard=False)
    t0 = time.perf_counter()
    try:
        eng.train()
        if job.get("keep_checkpoints"):
            eng.save_checkpoint()
    finally:
        eng.close()
    if not job.get("keep_checkpoints"):
        shutil.rmtree(os.path.join(job_dir, "checkpoints"), ignore_errors=True)
    return {"steps": eng.step, "resumed_at": resumed_at, "train_seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()  # wall time includes the imports: the estimate of a whole job needs them
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m dipo_tools.sweep.worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = os.path.abspath(argv[0])
    with open(os.path.join(job_dir, JOB_FILE), encoding="utf-8") as fh:
        job = json.load(fh)
    lock = open(os.path.join(job_dir, LOCK_FILE), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"[sweep] {job_dir} is being run by another process", file=sys.stderr)
        return EXIT_LOCKED
    if os.path.exists(os.path.join(job_dir, DONE_FILE)):
        return 0
    threads = int(job["threads"])
    torch.set_num_threads(threads)  # before any work: reduction order depends on it
    info = run_warmup(job, job_dir) if job["kind"] == "warmup" else run_train(job, job_dir)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # CPU time: a load-independent measure of the job's cost
    info.update(fingerprint=job["fingerprint"], seconds=time.perf_counter() - t0, finished=time.time(),
                cpu_seconds=usage.ru_utime + usage.ru_stime)
    tmp = os.path.join(job_dir, DONE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=1)
    os.replace(tmp, os.path.join(job_dir, DONE_FILE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
