# Over 400 lines: eight documented sections (every field's trade-off is the reference docs/config.md uses).
"""Structured configuration of the local engine (YAML -> OmegaConf -> these dataclasses).

Every field documents its trade-off. ``load_config`` merges a YAML file and ``key=value`` overrides onto the
defaults and validates everything before any work starts: an unknown key or a bad value raises
``ConfigError`` naming the file, the key and the allowed keys/values. docs/config.md is the reference.

Sections that belong to another part of the project nest that part's own config class, so each option is
defined and documented once: ``algorithm.dipo`` is a ``DiPOConfig``, ``rollout.runner`` a ``RunnerConfig``,
``reward.kwargs`` the chosen reward's config. OmegaConf 2.3 cannot type ``Literal`` fields, so those
sections are declared ``Any`` for OmegaConf and built into their class (with its own validation) by
``__post_init__``; after ``load_config`` they always hold the typed object.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from reward.math import MathConfig
from reward.multi_turn import MultiTurnConfig
from reward.toolrl import ToolRLConfig
from tool_envs.executor import ExecutorConfig
from tool_envs.runner import RunnerConfig

from dipo_tools.config_utils import ConfigError
from dipo_tools.dipo import DiPOConfig
from dipo_tools.models.tiny import PRESETS

ALGORITHMS = ("dipo", "grpo", "dapo")
ENGINES = ("local", "verl")
#: The config class of each reward (``reward.name``), which ``reward.kwargs`` is built into.
REWARD_CONFIGS: dict[str, type] = {"multi_turn": MultiTurnConfig, "toolrl": ToolRLConfig, "math": MathConfig}
REWARDS = tuple(REWARD_CONFIGS)
#: ``rollout.runner`` keys that default to a ``rollout`` key of the same meaning (runner key -> rollout key).
RUNNER_FROM_ROLLOUT = {"tool_format": "tool_format", "max_assistant_turns": "max_assistant_turns",
                       "max_response_tokens": "max_response_tokens", "max_calls_per_turn": "max_calls_per_turn",
                       "system_prompt": "system_prompt", "max_new_tokens_per_step": "max_new_tokens"}
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _nested(section: str, cls: type, value: Any, **derived: Any) -> Any:
    """``value`` (a mapping or an instance of ``cls``) as ``cls``, built by its ``from_mapping`` on top of
    ``derived`` defaults; an unknown key or a bad value is a ``ConfigError`` naming ``section``."""
    if isinstance(value, cls):
        return dataclasses.replace(value, **derived) if derived else value
    try:
        return cls.from_mapping({**derived, **dict(value or {})})
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{section}: {e}") from None


def _choice(section: str, name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ConfigError(f"{section}.{name}={value!r} is not allowed; allowed values: {list(allowed)}")


def _positive(section: str, name: str, value: Any, allow_zero: bool = False) -> None:
    if value is None or (value < 0 if allow_zero else value <= 0):
        raise ConfigError(f"{section}.{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


@dataclass
class ModelConfig:
    """Which policy to train.

    Parameters:
        path: A local HF model directory (config + weights + tokenizer). ``None`` builds a tiny Qwen2 from
            ``preset`` with a tokenizer trained at run time (no downloads); use a path for real models.
        preset: Tiny model size when ``path`` is None: ``test`` (unit tests), ``tiny`` (CPU demo), ``small``.
        vocab_size: Size of the run-time BPE tokenizer (tiny models only). Larger compresses prompts into fewer
            tokens (faster generation) but enlarges the logit matmul.
        tokenizer_corpus_tasks: Add the rendered training prompts to the tokenizer corpus so the env's tool
            names and JSON become single tokens (shorter sequences; tiny models only).
        device: ``auto`` picks CUDA when present; the engine is single-device by design.
        dtype: Parameter dtype. float32 on CPU; bfloat16 halves GPU memory at some precision cost.
        gradient_checkpointing: Trade ~30% more compute for much less activation memory (large models).
    """

    path: Optional[str] = None
    preset: str = "tiny"
    vocab_size: int = 1024
    tokenizer_corpus_tasks: bool = True
    device: str = "auto"
    dtype: str = "float32"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.path is None:
            _choice("model", "preset", self.preset, sorted(PRESETS))
        _choice("model", "device", self.device, DEVICES)
        _choice("model", "dtype", self.dtype, DTYPES)
        _positive("model", "vocab_size", self.vocab_size)


@dataclass
class DataConfig:
    """Where tasks come from.

    Parameters:
        env: Environment name or schema-file path (``tool_envs.load_env``); used for tasks that name none and
            for the task generator.
        train_file: JSONL of ``tool_envs.tasks.Task`` rows for training. ``None`` uses the env's generator.
        eval_file: JSONL of held-out tasks. ``None`` uses the generator with a different seed.
        num_train: Tasks to generate when no train file is given.
        num_eval: Held-out tasks to generate (or the first ``num_eval`` of ``eval_file``; 0 = all of it).
        generator: Extra keyword arguments for the env's task generator (e.g. difficulty knobs).
        seed: Data seed: generation and the per-epoch shuffle order.
        env_path: Folders of environments kept outside the repository, so tasks can name them
            (``"envs": ["myshop"]`` finds ``<folder>/myshop/env.yaml`` or ``<folder>/env.yaml`` named
            ``myshop``); searched before ``$TOOL_ENVS_PATH`` and, last, the task files' own folders.
        eval_unseen_texts: Keep one held-out task per distinct request text, none of whose texts occurs in
            the training tasks, topping up from more generated tasks (both splits) to ``num_eval``. A greedy
            answer depends only on the text, so tasks sharing one are the same sample: with this, ``num_eval``
            counts independent samples of generalisation to new requests. Costs generating ~8x ``num_eval``
            candidate tasks; may return fewer than ``num_eval`` when the generator has few distinct texts.
    """

    env: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    num_train: int = 256
    num_eval: int = 64
    generator: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    env_path: List[str] = field(default_factory=list)
    eval_unseen_texts: bool = False

    def __post_init__(self) -> None:
        _positive("data", "num_train", self.num_train)
        _positive("data", "num_eval", self.num_eval, allow_zero=True)


@dataclass
class RolloutConfig:
    """Sampling of G trajectories per task with the shared episode runner.

    Parameters:
        tasks_per_step: Distinct tasks (groups) per RL step. More groups make the advantage statistics and the
            PSD queue less noisy; cost grows linearly.
        group_size: Responses per task (G). GRPO needs G >= 2; larger G gives fewer zero-variance groups.
        temperature: Sampling temperature; log-probs are taken at this temperature for the PPO ratio and PPL.
            Lower concentrates on the current policy's choices (less exploration).
        top_p: Nucleus sampling; 1.0 keeps the full distribution (the PPO ratio is then exact).
        top_k: 0 disables top-k.
        max_new_tokens: Generation budget per assistant step.
        max_response_tokens: Budget for all response tokens (generated + tool outputs) per episode.
        max_assistant_turns: Assistant steps per user turn before the runner stops the episode.
        max_calls_per_turn: Tool calls executed per assistant step.
        tool_format: Tool-call syntax the model writes: ``hermes`` (``<tool_call>`` JSON), ``toolrl``, ``python``.
        system_prompt: Optional system prompt (the env/task one is used when None).
        max_batch: Largest generation batch; concurrent episodes are batched into one ``generate`` call.
        reproducible_batches: True: a generation batch is formed only when every running episode waits for
            the model, its rows in episode order, so a seed gives the same samples however long tool calls
            take (what paired seeds and ``dipo sweep`` rely on); an episode whose tool call returned early
            waits for the slowest call of the round (at most the tool-call timeout). False: the episodes that
            are ready are served at once (faster when tool calls are slow or hang), but which episodes share
            a batch, and so each one's random draws, depend on timing: runs of one seed differ.
        eval_temperature: 0 = greedy evaluation on held-out tasks.
        runner: The episode runner's ``tool_envs.runner.RunnerConfig``. Its ``tool_format``,
            ``max_assistant_turns``, ``max_response_tokens``, ``max_calls_per_turn``, ``system_prompt`` and
            ``max_new_tokens_per_step`` default to this section's ``tool_format``, ``max_assistant_turns``,
            ``max_response_tokens``, ``max_calls_per_turn``, ``system_prompt`` and ``max_new_tokens``; a key
            given under ``runner`` wins. Set its other options here (``pass_tools_to_template``,
            ``chat_template_kwargs``, ``max_prompt_tokens``, ...).
        tool_executor: Options of ``tool_envs.ExecutorConfig`` (``process_workers``, ``thread_workers``,
            ``isolation``, ...): how many worker processes/threads run tool calls. Empty keeps the defaults
            (and ``TOOL_ENVS_*`` environment variables).
    """

    tasks_per_step: int = 8
    group_size: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    max_response_tokens: int = 256
    max_assistant_turns: int = 2
    max_calls_per_turn: int = 4
    tool_format: str = "hermes"
    system_prompt: Optional[str] = None
    max_batch: int = 128
    reproducible_batches: bool = True
    eval_temperature: float = 0.0
    runner: Any = field(default_factory=dict)  # a RunnerConfig after __post_init__ (see the module docstring)
    tool_executor: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in ("tasks_per_step", "group_size", "max_new_tokens", "max_response_tokens", "max_assistant_turns",
                  "max_calls_per_turn", "max_batch"):
            _positive("rollout", k, getattr(self, k))
        _positive("rollout", "temperature", self.temperature)
        _positive("rollout", "eval_temperature", self.eval_temperature, allow_zero=True)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"rollout.top_p={self.top_p!r} must be in (0, 1]")
        _choice("rollout", "tool_format", self.tool_format, ("hermes", "toolrl", "python"))
        if not isinstance(self.runner, RunnerConfig):
            derived = {key: getattr(self, source) for key, source in RUNNER_FROM_ROLLOUT.items()}
            self.runner = _nested("rollout.runner", RunnerConfig, {**derived, **dict(self.runner or {})})
        if self.tool_executor:
            allowed = sorted(f.name for f in dataclasses.fields(ExecutorConfig))
            unknown = sorted(set(self.tool_executor) - set(allowed))
            if unknown:
                raise ConfigError(f"rollout.tool_executor: unknown key(s) {unknown}; allowed keys: {allowed}")


@dataclass
class AlgorithmConfig:
    """Advantage estimator.

    Parameters:
        name: ``dipo`` (GRPO advantages + alpha * reallocated-reward advantages), ``grpo`` (plain group
            normalisation; extreme groups give no gradient) or ``dapo`` (GRPO + dynamic sampling: groups whose
            score has zero variance are dropped before the update).
        dipo: The ``dipo_tools.dipo.DiPOConfig`` (alpha, queue_batches, z, min_side, gate, extreme_by,
            reallocate, norm_by_std, eps). Its ``enabled`` follows ``name`` (on for ``dipo`` only) and cannot be
            set here. GRPO/DAPO runs still compute and log the PSD diagnostics.
        dynamic_sampling: Drop zero-variance groups (DAPO). Must stay off for DiPO, which needs exactly those
            groups; ``None`` means "on for dapo, off otherwise".
    """

    name: str = "dipo"
    dipo: Any = field(default_factory=dict)  # a DiPOConfig after __post_init__ (see the module docstring)
    dynamic_sampling: Optional[bool] = None

    def __post_init__(self) -> None:
        _choice("algorithm", "name", self.name, ALGORITHMS)
        if isinstance(self.dipo, Mapping) and "enabled" in self.dipo:
            raise ConfigError("algorithm.dipo.enabled is set by algorithm.name; remove it")
        self.dipo = _nested("algorithm.dipo", DiPOConfig, self.dipo, enabled=self.name == "dipo")
        if self.name == "dipo" and self.dynamic_sampling:
            raise ConfigError("algorithm.dynamic_sampling=true deletes the extreme groups DiPO reallocates; "
                              "set it to false (or null) with algorithm.name=dipo")

    @property
    def use_dynamic_sampling(self) -> bool:
        return self.name == "dapo" if self.dynamic_sampling is None else bool(self.dynamic_sampling)


@dataclass
class ActorConfig:
    """Policy update with verl's policy loss (clip-higher, token-mean) and AdamW.

    Parameters:
        lr: AdamW learning rate. Tiny from-scratch models tolerate 1e-4..5e-4; real 1-8B models want ~1e-6.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        grad_clip: Max global grad norm (verl default 1.0); guards against rare huge-advantage batches.
        clip_ratio_low: PPO lower clip epsilon (DAPO 0.2).
        clip_ratio_high: PPO upper clip epsilon (DAPO clip-higher 0.28: lets unlikely good tokens grow faster).
        clip_ratio_c: Dual-clip bound for negative advantages: 10.0 as the DAPO base of the verl DAPO/DiPO
            configs (verl's own default is 3.0, which ToolRL's GRPO run used). Lower bounds the loss of
            very off-policy tokens with negative advantage more tightly.
        loss_agg_mode: verl ``agg_loss`` mode; ``token-mean`` as DAPO/DiPO.
        policy_loss: Name in verl's policy-loss registry (``vanilla`` = PPO clip).
        ppo_epochs: Passes over each batch. >1 reuses samples (more learning per rollout) with ratio clipping.
        mini_batch_size: Responses per optimizer step; 0 = the whole batch in one step.
        micro_batch_size: Responses per forward/backward (gradient accumulation); 0 = the whole mini-batch.
        recompute_old_logprobs: Recompute old log-probs with a training forward pass (as verl does) instead of
            using the sampler's; removes kernel/padding mismatch from the ratio at the cost of one forward.
    """

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_c: float = 10.0
    loss_agg_mode: str = "token-mean"
    policy_loss: str = "vanilla"
    ppo_epochs: int = 1
    mini_batch_size: int = 0
    micro_batch_size: int = 0
    recompute_old_logprobs: bool = True

    def __post_init__(self) -> None:
        _positive("actor", "lr", self.lr)
        _positive("actor", "grad_clip", self.grad_clip)
        _positive("actor", "ppo_epochs", self.ppo_epochs)
        _positive("actor", "mini_batch_size", self.mini_batch_size, allow_zero=True)
        _positive("actor", "micro_batch_size", self.micro_batch_size, allow_zero=True)
        _choice("actor", "loss_agg_mode", self.loss_agg_mode, LOSS_AGG_MODES)
        if self.clip_ratio_c <= 1:
            raise ConfigError(f"actor.clip_ratio_c={self.clip_ratio_c!r} must be > 1 (dual-clip bound)")
        if len(self.betas) != 2:
            raise ConfigError(f"actor.betas={list(self.betas)!r} must be two numbers, e.g. [0.9, 0.999]")


@dataclass
class RewardConfig:
    """How trajectories are scored.

    Parameters:
        name: ``multi_turn`` (``reward.multi_turn.score_episode``: per-turn call matching and final state),
            ``toolrl`` (``reward.toolrl.toolrl_reward`` on the first assistant message; single-turn tasks) or
            ``math`` (``reward.math.math_reward``: math-verify on the last assistant message against the task's
            ``metadata.answer``; tools may be called on the way, only the final answer counts).
        kwargs: The chosen reward's config: ``reward.multi_turn.MultiTurnConfig``, ``reward.toolrl.ToolRLConfig``
            or ``reward.math.MathConfig`` (``REWARD_CONFIGS``); give only the options to change.
    """

    name: str = "multi_turn"
    kwargs: Any = field(default_factory=dict)  # the reward's config after __post_init__ (module docstring)

    def __post_init__(self) -> None:
        _choice("reward", "name", self.name, REWARDS)
        self.kwargs = _nested("reward.kwargs", REWARD_CONFIGS[self.name], self.kwargs)


@dataclass
class SFTConfig:
    """Supervised warm-up on oracle trajectories of the training tasks (prompt tokens masked).

    Parameters:
        steps: Optimizer steps; 0 disables the warm-up. Enough to learn the call format, not the whole task.
        batch_size: Sequences per step.
        lr: Warm-up learning rate (higher than RL's: the model starts from scratch).
        final_text: The assistant's closing message after the tool results, teaching it to end the turn. A
            task's ``metadata.reference_reply`` (e.g. ``Answer: 161`` for a math task) replaces it.
    """

    steps: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    final_text: str = "Done."

    def __post_init__(self) -> None:
        _positive("sft", "steps", self.steps, allow_zero=True)
        _positive("sft", "batch_size", self.batch_size)
        _positive("sft", "lr", self.lr)


@dataclass
class TrainerConfig:
    """Loop, logging and checkpointing.

    Parameters:
        total_steps: RL steps.
        output_dir: Metrics (JSONL, TensorBoard), checkpoints and plots go here.
        seed: Global seed (model init, sampling, data order).
        eval_every: Evaluate on held-out tasks every N steps (and at step 0 and the end); 0 disables.
        save_every: Save a resumable checkpoint every N steps; 0 = only at the end.
        keep_checkpoints: Newest checkpoints to keep.
        resume: ``auto`` resumes from the newest checkpoint in output_dir if any; a path resumes from it;
            ``none`` starts fresh.
        tensorboard: Also write TensorBoard event files.
        wandb_project: Log to Weights & Biases under this project (requires wandb); None disables.
        plots: Write PNG plots of the metrics at the end.
        progress: Show a tqdm progress bar.
        torch_threads: CPU threads for torch (0 = torch's default).
    """

    total_steps: int = 100
    output_dir: str = "outputs/local"
    seed: int = 0
    eval_every: int = 10
    save_every: int = 0
    keep_checkpoints: int = 2
    resume: str = "none"
    tensorboard: bool = True
    wandb_project: Optional[str] = None
    plots: bool = True
    progress: bool = True
    torch_threads: int = 0

    def __post_init__(self) -> None:
        _positive("trainer", "total_steps", self.total_steps, allow_zero=True)
        _positive("trainer", "eval_every", self.eval_every, allow_zero=True)
        _positive("trainer", "save_every", self.save_every, allow_zero=True)
        _positive("trainer", "keep_checkpoints", self.keep_checkpoints)


@dataclass
class LocalConfig:
    """Top-level config of ``dipo train`` with ``engine: local``.

    Parameters:
        engine: Which trainer runs the file; always ``local`` here. ``dipo train`` reads this key first
            (``engine_of``) and hands ``engine: verl`` files to the verl launcher, which has its own config.
    """

    engine: str = "local"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if self.engine != "local":
            raise ConfigError(f"engine={self.engine!r}: this file is not a local-engine config; run it with "
                              f"`dipo train --config FILE`, which hands engine: verl files to the verl launcher")
        if self.data.env is None and self.data.train_file is None:
            raise ConfigError("data.env is required: an environment name (see `dipo env list`) or a schema file")


def _friendly(err: Exception, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or ""
    if isinstance(err, ConfigKeyError):
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        allowed = _allowed_keys(parent)
        where = f"section '{parent}'" if parent else "the top level"
        return ConfigError(f"{source}: unknown key '{key}'; allowed keys in {where}: {allowed}")
    if isinstance(err, ValidationError):
        return ConfigError(f"{source}: bad value for '{key}': {getattr(err, 'msg', str(err)).splitlines()[0]}")
    return ConfigError(f"{source}: {err}")


def _allowed_keys(dotted: str) -> list[str]:
    cls: Any = LocalConfig
    for part in [p for p in dotted.split(".") if p]:
        f = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if f is None or not dataclasses.is_dataclass(f.default_factory() if callable(f.default_factory) else None):
            return []
        cls = type(f.default_factory())
    return sorted(f.name for f in dataclasses.fields(cls))


def _schema() -> LocalConfig:
    """The defaults as OmegaConf's schema, the nested sections as empty mappings: OmegaConf 2.3 cannot hold
    their ``Literal`` fields, and ``__post_init__`` builds them (with their defaults) after the merge."""
    cfg = LocalConfig(data=DataConfig(env="-"))  # a placeholder: a run must name its env, the schema not
    cfg.data.env = None
    cfg.algorithm.dipo, cfg.rollout.runner, cfg.reward.kwargs = {}, {}, {}
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> LocalConfig:
    """Compose defaults <- YAML file <- ``key=value`` overrides, then validate into ``LocalConfig``.

    Raises ``ConfigError`` (naming file, key and allowed keys/values) on any problem, before any work.
    """
    base = OmegaConf.structured(_schema(), flags={"allow_objects": False})
    source = str(path) if path else "<defaults>"
    try:
        merged = base
        if path is not None:
            if not os.path.exists(path):
                raise ConfigError(f"config file {path} does not exist")
            file_cfg = OmegaConf.load(path)
            if not isinstance(file_cfg, dict) and not OmegaConf.is_dict(file_cfg):
                raise ConfigError(f"{path}: the top level must be a mapping of sections")
            merged = OmegaConf.merge(merged, file_cfg)
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} must look like key=value (e.g. trainer.total_steps=10)")
            source = f"{source} + overrides"
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(merged)  # runs every __post_init__ validation
    except ConfigError as e:
        if str(e).startswith(source) or str(e).startswith("config file"):
            raise
        raise ConfigError(f"{source}: {e}") from None
    except OmegaConfBaseException as e:
        raise _friendly(e, source) from None


def config_to_dict(cfg: LocalConfig) -> dict:
    """Every resolved value as plain containers (nested configs included), e.g. to print or record a run.

    ``load_config`` of the result gives ``cfg`` back: the values other keys decide are left out
    (``algorithm.dipo.enabled`` follows ``algorithm.name``; a ``rollout.runner`` key equal to the ``rollout``
    key it defaults to is left to that key, so an override of the ``rollout`` key still reaches the runner).
    """
    out = dataclasses.asdict(cfg)
    out["algorithm"]["dipo"].pop("enabled", None)
    runner, rollout = out["rollout"]["runner"], out["rollout"]
    for key, source in RUNNER_FROM_ROLLOUT.items():
        if runner.get(key) == rollout[source]:
            runner.pop(key)
    return out


def engine_of(path: str | os.PathLike, overrides: Sequence[str] = (), flag: str | None = None) -> str:
    """Which engine runs a ``dipo train`` config: ``--engine`` (``flag``) when given, else the file's top-level
    ``engine`` key (an ``engine=`` override wins). Never guessed from other keys: a file without the key, or
    with another value, is a ``ConfigError`` saying what to write."""
    fix = "add `engine: local` (configs/local/) or `engine: verl` (configs/verl/) at the top of the file, " \
          "or pass --engine local|verl"
    if flag is not None:
        engine = flag
    else:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = OmegaConf.load(path)
            chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("engine=")]
            engine = chosen[-1] if chosen else (raw.get("engine") if OmegaConf.is_dict(raw) else None)
        except Exception as e:  # a YAML syntax error: one line, not a traceback
            raise ConfigError(f"{path}: cannot read YAML: {str(e).splitlines()[0]}") from None
        if engine is None:
            raise ConfigError(f"{path}: no `engine` key; {fix}")
    if engine not in ENGINES:
        raise ConfigError(f"{path}: engine={engine!r} is not allowed; allowed values: {list(ENGINES)}; {fix}")
    return engine
