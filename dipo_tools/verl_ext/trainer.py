"""verl 0.9.1 V1 sync trainer with DiPO: old-policy log-probs, the binary verdict and a persistent PPL queue.

verl's generic advantage call site hands custom estimators only the rewards, the mask and the uids
(verl 0.9.1, ``verl.trainer.ppo.ray_trainer.compute_advantage``). :class:`DiPOTrainerSync` overrides ``_compute_advantage`` so the ``"dipo"``
estimator also gets ``old_log_probs``, ``acc`` (from the reward's extra info) and :class:`DiPOState`,
and writes DiPO's statistics into verl's metrics under ``dipo/``. With any other estimator it runs the
base method unchanged. The state is saved to and restored from ``global_step_N/dipo_state.pt``.

The DiPO branch is a copy of ``PPOTrainer._compute_advantage`` of verl 0.9.1 with step 3 replaced;
``tests/dipo_tools/verl_ext/test_trainer.py`` pins the base method's source hash so a verl upgrade that
changes it fails loudly instead of silently diverging.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl.protocol import DataProto
from verl.trainer.ppo.ray_trainer import apply_kl_penalty
from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_add_to_batch
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path
from verl.workers.utils.padding import response_to_nested

from dipo_tools.dipo import DiPOState
from dipo_tools.verl_ext.estimator import ESTIMATOR_NAME, compute_dipo_outcome_advantage
from dipo_tools.verl_ext.validation import check_dipo_settings

logger = logging.getLogger(__name__)

DIPO_STATE_FILE = "dipo_state.pt"
METRIC_PREFIX = "dipo/"


def final_session_rows(batch_keys: list[str]) -> tuple[list[int], list[int]]:
    """Rows that carry each session's final output, and for every row the position of its final row.

    TransferQueue keys are ``{uid}_{session}_{index}``; an agent loop may emit several outputs per session
    and, as in verl's GRPO path, only the last one is scored, its advantage broadcast to the others.
    """
    final: dict[str, tuple[int, int]] = {}
    row_sessions = []
    for row, key in enumerate(batch_keys):
        parts = key.rsplit("_", 2)
        if len(parts) != 3:
            raise ValueError(f"unexpected TransferQueue key {key!r}; expected '{{uid}}_{{session}}_{{index}}'")
        session, index = f"{parts[0]}_{parts[1]}", int(parts[2])
        row_sessions.append(session)
        if session not in final or final[session][0] < index:
            final[session] = (index, row)
    order = {session: pos for pos, session in enumerate(final)}
    return [row for _, row in final.values()], [order[s] for s in row_sessions]


def acc_from_extra_fields(extra_fields: list[Any]) -> np.ndarray:
    """Binary verdict per row from ``extra_fields["reward_extra_info"]["acc"]`` (or ``"success"``).

    The verdict must come from the verifier, separate from the shaped score (DiPO groups are judged
    extreme on it). A missing value is a configuration error, reported with the fix.
    """
    values = []
    for row, fields in enumerate(extra_fields):
        info = (fields or {}).get("reward_extra_info", {}) if isinstance(fields, dict) else {}
        value = info.get("acc", info.get("success")) if isinstance(info, dict) else None
        if isinstance(value, (list, tuple, np.ndarray)):  # some managers store per-output lists
            value = value[-1] if len(value) else None
        if value is None:
            raise ValueError(
                f"adv_estimator=dipo: row {row} has no binary 'acc' in reward_extra_info. The reward function "
                "(reward.custom_reward_function) must return a dict with 'score' and 'acc' (1 = verified correct), "
                "or the agent loop must set extra_fields['reward_extra_info']['acc']."
            )
        values.append(float(value))
    return np.asarray(values, dtype=np.float64)


def padding_rows(tags: list[dict] | None, n: int) -> list[bool]:
    """Which rows are verl's synthetic padding (``tag["is_padding"]``, set by ``upsample_batch_to_divisible_size``)."""
    if tags is None:
        return [False] * n
    return [bool((tag or {}).get("is_padding", False)) for tag in tags]


def _scalar_metrics(stats: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in stats.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        elif isinstance(value, np.ndarray):
            if value.size != 1:
                continue
            value = value.item()
        if isinstance(value, (bool, int, float, np.number)):
            out[f"{METRIC_PREFIX}{key}"] = float(value)
    return out


class DiPOTrainerSync(PPOTrainerSync):
    """``PPOTrainerSync`` + DiPO advantages. Registered as verl's ``"sync"`` trainer by our TaskRunner."""

    def __init__(self, config):
        check_dipo_settings(config)
        super().__init__(config)
        self.dipo_state = DiPOState()
        self._restored_queue: dict[str, float] | None = None  # logged once, on the first step after a resume

    @property
    def uses_dipo(self) -> bool:
        return self.config.algorithm.adv_estimator == ESTIMATOR_NAME

    # ------------------------------------------------------------------ advantage
    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        if not self.uses_dipo:
            return super()._compute_advantage(batch, metrics)

        fields = ["uid", "response_mask", "rm_scores", "rollout_log_probs", "old_log_probs", "ref_log_prob", "values"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        # extra_fields holds per-row dicts; fetched apart so the padded tensor view stays tensor-only
        extra = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        extra_fields = extra.get("extra_fields")  # NonTensorStack of per-row dicts (td[...] gives a LinkedList)
        acc = acc_from_extra_fields(extra_fields.tolist() if hasattr(extra_fields, "tolist") else list(extra_fields))

        response_mask = data["response_mask"]
        data = DataProto(batch=data.to_padded_tensor())
        data.batch["token_level_scores"] = data.batch["rm_scores"]
        data.non_tensor_batch["uid"] = np.array(data.batch.pop("uid").tolist(), dtype=object)

        # 1. apply kl penalty to rewards (as the base method)
        if self.config.algorithm.use_kl_in_reward:
            data, kl_metrics = apply_kl_penalty(
                data, kl_ctrl=self.kl_ctrl_in_reward, kl_penalty=self.config.algorithm.kl_penalty
            )
            metrics.update(kl_metrics)
        else:
            data.batch["token_level_rewards"] = data.batch["token_level_scores"]

        # 2. rollout correction (as the base method)
        rollout_corr_config = self.config.algorithm.get("rollout_correction", None)
        bypass_recomputing_logprobs = rollout_corr_config and rollout_corr_config.get("bypass_mode", False)
        rollout_correction = (
            rollout_corr_config is not None and "rollout_log_probs" in data.batch and not bypass_recomputing_logprobs
        )
        if rollout_correction:
            data, is_metrics = compute_rollout_correction_and_add_to_batch(data, rollout_corr_config)
            metrics.update(is_metrics)

        # 3. DiPO on each session's final output, broadcast to the session's other outputs
        data = self._dipo_advantage(data, batch.keys, batch.tags, acc, metrics)

        # 4. write nested advantages and returns back to TransferQueue (as the base method)
        out_fields = ["advantages", "returns"]
        if self.config.algorithm.use_kl_in_reward:
            out_fields.append("token_level_rewards")
        if rollout_correction:
            out_fields.append("response_mask")
            if "rollout_is_weights" in data.batch:
                out_fields.append("rollout_is_weights")
        output = {name: response_to_nested(data.batch[name], response_mask) for name in out_fields}
        output = TensorDict(output, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)

    def _dipo_advantage(self, data: DataProto, batch_keys: list[str], tags: list[dict] | None, acc: np.ndarray,
                        metrics: dict) -> DataProto:
        if "old_log_probs" in data.batch:
            log_probs = data.batch["old_log_probs"]
        elif "rollout_log_probs" in data.batch:  # bypass mode: verl trains against the rollout policy
            log_probs = data.batch["rollout_log_probs"]
        else:
            raise ValueError(
                "adv_estimator=dipo needs per-token log-probs of the old policy, but the batch has neither "
                "'old_log_probs' nor 'rollout_log_probs'; keep actor_rollout_ref.rollout.calculate_log_probs=true"
            )
        final_rows, row_to_final = final_session_rows(list(batch_keys))
        # verl's padding rows (upsample_batch_to_divisible_size: is_padding tag, all-zero response mask,
        # extra_fields copied from a real row) are not responses: they stay out of the queue and the groups
        padding = padding_rows(tags, len(batch_keys))
        real = [i for i, row in enumerate(final_rows) if not padding[row]]
        idx = torch.as_tensor([final_rows[i] for i in real], dtype=torch.long)
        mask = data.batch["response_mask"]
        stats: dict[str, Any] = {}
        if self._restored_queue is not None:
            metrics.update({f"{METRIC_PREFIX}{k}": v for k, v in self._restored_queue.items()})
            self._restored_queue = None
        adv_final, _ = compute_dipo_outcome_advantage(
            token_level_rewards=data.batch["token_level_rewards"][idx],
            response_mask=mask[idx],
            index=data.non_tensor_batch["uid"][idx.numpy()],
            old_log_probs=log_probs[idx],
            acc=acc[idx.numpy()],
            state=self.dipo_state,
            config=self.config.algorithm,
            stats_out=stats,
        )
        # per-response scalar: the value on the first generated token (mask is 0/1, adv constant on it)
        first = mask[idx].argmax(dim=1)
        scalar = torch.zeros(len(final_rows), dtype=adv_final.dtype)
        scalar[torch.as_tensor(real, dtype=torch.long)] = adv_final[torch.arange(len(real)), first]
        advantages = scalar[torch.as_tensor(row_to_final, dtype=torch.long)].unsqueeze(-1) * mask
        data.batch["advantages"] = advantages
        data.batch["returns"] = advantages
        stats["padding_rows"] = int(sum(padding))
        metrics.update(_scalar_metrics(stats))
        return data

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self):
        # written before verl's tracker file, so a checkpoint verl considers complete always has it
        if self.uses_dipo:
            folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
            os.makedirs(folder, exist_ok=True)
            torch.save(self.dipo_state.state_dict(), os.path.join(folder, DIPO_STATE_FILE))
        super()._save_checkpoint()

    def _load_checkpoint(self):
        super()._load_checkpoint()
        if not self.uses_dipo:
            return
        folder = self._resumed_step_folder()
        if folder is None:
            return
        path = os.path.join(folder, DIPO_STATE_FILE)
        if os.path.exists(path):
            self.dipo_state.load_state_dict(torch.load(path, weights_only=False))
            self._restored_queue = {"restored_queue_size": float(len(self.dipo_state)),
                                    "restored_queue_fingerprint": self.dipo_state.fingerprint()}
            logger.info("Restored DiPO state (%d queued responses) from %s", len(self.dipo_state), path)
        else:
            logger.warning("No %s in %s: the DiPO PPL queue starts empty", DIPO_STATE_FILE, folder)

    def _resumed_step_folder(self) -> str | None:
        """The ``global_step_N`` folder verl resumed from (same rules as ``PPOTrainer._load_checkpoint``)."""
        mode = self.config.trainer.resume_mode
        if mode == "disable" or not self.global_steps:
            return None
        if mode == "resume_path":
            folder = self.config.trainer.resume_from_path
            return folder if os.path.isabs(folder) else os.path.join(os.getcwd(), folder)
        root = self.config.trainer.default_local_dir
        root = root if os.path.isabs(root) else os.path.join(os.getcwd(), root)
        return find_latest_ckpt_path(root)
