"""DiPOTrainerSync on verl 0.9.1's real batch structures (TransferQueue replaced at its interface)."""
from __future__ import annotations

import hashlib
import inspect
import math

import numpy as np
import pytest
import torch


from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput  # noqa: E402
from verl.trainer.ppo.v1.trainer_base import PPOTrainer  # noqa: E402
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync  # noqa: E402

from dipo_tools.dipo import DiPOState  # noqa: E402
from dipo_tools.verl_ext.estimator import compute_dipo_outcome_advantage  # noqa: E402
from dipo_tools.verl_ext.trainer import (  # noqa: E402
    DIPO_STATE_FILE,
    DiPOTrainerSync,
    acc_from_extra_fields,
    final_session_rows,
)
from dipo_tools.verl_ext.validation import ConfigError  # noqa: E402

# sha256 of inspect.getsource(PPOTrainer._compute_advantage) in verl 0.9.1. DiPOTrainerSync copies that
# method; if this fails after a verl upgrade, re-read the new base method, port the change into
# DiPOTrainerSync._compute_advantage, then update the hash.
PINNED_BASE_SOURCE_SHA256 = "2a4a2aa4a475b228d401959818e0b9019276ce27961c133961de217baa387da7"
# DiPOTrainerSync._resumed_step_folder mirrors how PPOTrainer._load_checkpoint picks the folder to resume.
PINNED_LOAD_CHECKPOINT_SHA256 = "bb446d77c48ac6cc633e86c83b7195b78d899ece10d1b5e7150908acddb17265"


def _row(uid: str, score: float, acc: float, old_lp: list[float], *, tool_tokens: int = 0) -> dict:
    """One trajectory row as AgentLoopWorkerTQ stores it (AgentLoopOutput.as_dict() + dataset kwargs),
    plus the old_log_probs the actor step writes back."""
    gen = len(old_lp)
    mask = [1] * (gen - 1) + [0] * tool_tokens + [1]  # a tool response inside the response, mask 0
    logprobs = old_lp[:-1] + [0.0] * tool_tokens + old_lp[-1:]
    out = AgentLoopOutput(
        prompt_ids=[1, 2, 3],
        response_ids=list(range(10, 10 + len(mask))),
        response_mask=mask,
        response_logprobs=logprobs,
        reward_score=score,
        num_turns=2,
        metrics=AgentLoopMetrics(),
        extra_fields={"reward_extra_info": {"score": score, "acc": acc}},
    )
    row = out.as_dict()
    row["uid"] = uid
    row["old_log_probs"] = torch.tensor(logprobs, dtype=torch.float32)
    return row


def _batch(fake_tq, groups: dict[str, list[tuple[float, float, list[float]]]], partition="train"):
    from transfer_queue import KVBatchMeta

    keys, rows = [], []
    for uid, members in groups.items():
        for session, (score, acc, lp) in enumerate(members):
            keys.append(f"{uid}_{session}_0")
            rows.append(_row(uid, score, acc, lp, tool_tokens=session % 2))
    fake_tq.put_rows(partition, keys, rows)
    return KVBatchMeta(keys=keys, tags=[{} for _ in keys], partition_id=partition)


# hard group "h": all wrong, response 2 has by far the highest PPL; group "m": mixed; easy group "e"
GROUPS = {
    "h": [(-1.0, 0, [-0.1, -0.2]), (-2.0, 0, [-0.1, -0.1, -0.3]), (-0.5, 0, [-3.0, -2.5]), (-1.0, 0, [-0.2])],
    "m": [(4.0, 1, [-0.1, -0.1]), (1.0, 0, [-1.0, -1.2]), (4.0, 1, [-0.3]), (0.0, 0, [-0.5, -0.4, -0.6])],
    "e": [(4.0, 1, [-0.1]), (4.0, 1, [-0.2, -0.1]), (4.0, 1, [-0.15, -0.1]), (4.0, 1, [-2.0, -1.5])],
}


@pytest.fixture
def dipo_trainer(compose):
    cfg = compose("tool_dipo_qwen2.5-3b", ["actor_rollout_ref.rollout.n=4", "algorithm.dipo.gate=none"])
    return DiPOTrainerSync(cfg)


def _adv_scalar(fake_tq, key):
    adv = fake_tq.field("train", key, "advantages")
    mask = fake_tq.field("train", key, "response_mask")
    assert adv.shape == mask.shape  # written back per response token (jagged), like verl
    assert torch.all(adv[mask == 0] == 0)
    values = adv[mask == 1]
    assert torch.allclose(values, values[0].expand_as(values))
    return float(values[0])


def test_base_method_source_is_pinned():
    digest = hashlib.sha256(inspect.getsource(PPOTrainer._compute_advantage).encode()).hexdigest()
    assert digest == PINNED_BASE_SOURCE_SHA256, (
        "verl's PPOTrainer._compute_advantage changed; DiPOTrainerSync._compute_advantage is a copy of it "
        "with step 3 replaced: port the change, then update PINNED_BASE_SOURCE_SHA256"
    )
    digest = hashlib.sha256(inspect.getsource(PPOTrainer._load_checkpoint).encode()).hexdigest()
    assert digest == PINNED_LOAD_CHECKPOINT_SHA256, (
        "verl's PPOTrainer._load_checkpoint changed; check DiPOTrainerSync._resumed_step_folder still finds "
        "the folder verl resumed from, then update PINNED_LOAD_CHECKPOINT_SHA256"
    )


def test_dipo_advantages_land_in_the_batch(dipo_trainer, fake_tq):
    batch = _batch(fake_tq, GROUPS)
    metrics: dict = {}
    dipo_trainer._compute_advantage(batch, metrics)

    # expected: the registered estimator on the padded tensors, with a fresh queue
    keys = batch.keys
    rows = [fake_tq.rows[("train", k)] for k in keys]
    width = max(len(r["response_mask"]) for r in rows)
    pad = lambda t: torch.nn.functional.pad(t.float(), (0, width - len(t)))  # noqa: E731
    mask = torch.stack([pad(r["response_mask"]) for r in rows])
    rewards = torch.stack([pad(r["rm_scores"]) for r in rows])
    old_lp = torch.stack([pad(r["old_log_probs"]) for r in rows])
    acc = [r["extra_fields"]["reward_extra_info"]["acc"] for r in rows]
    uids = np.array([r["uid"] for r in rows], dtype=object)
    expected, _ = compute_dipo_outcome_advantage(rewards, mask, uids, old_log_probs=old_lp, acc=acc,
                                                 state=DiPOState(), config=dipo_trainer.config.algorithm)
    got = torch.tensor([_adv_scalar(fake_tq, k) for k in keys])
    want = torch.tensor([float(expected[i][mask[i] == 1][0]) for i in range(len(keys))])
    assert torch.allclose(got, want, atol=1e-6)
    for k in keys:  # returns == advantages, as every outcome estimator in verl
        assert torch.equal(fake_tq.field("train", k, "returns"), fake_tq.field("train", k, "advantages"))

    # behaviour, not just plumbing: in the all-wrong group the max-PPL response (h_2) is rewarded,
    # which needs old_log_probs and acc to have reached the estimator
    hard = {k: _adv_scalar(fake_tq, k) for k in keys if k.startswith("h_")}
    assert hard["h_2_0"] > 0 and all(v < hard["h_2_0"] for k, v in hard.items() if k != "h_2_0")
    easy = {k: _adv_scalar(fake_tq, k) for k in keys if k.startswith("e_")}
    assert easy["e_3_0"] < 0  # the least confident success of the easy group is penalised
    # the mixed group keeps GRPO's sign pattern
    assert _adv_scalar(fake_tq, "m_0_0") > 0 > _adv_scalar(fake_tq, "m_3_0")

    assert metrics["dipo/frac_hard"] == pytest.approx(1 / 3)
    assert metrics["dipo/frac_easy"] == pytest.approx(1 / 3)
    assert metrics["dipo/n_realloc_hard"] == 1 and metrics["dipo/n_realloc_easy"] == 1
    assert metrics["dipo/queue_size"] == 12
    assert all(isinstance(v, float) for k, v in metrics.items() if k.startswith("dipo/"))

    # the queue persists on the trainer across steps and keeps `queue_batches` batches
    assert len(dipo_trainer.dipo_state) == 12
    for _ in range(2):
        dipo_trainer._compute_advantage(_batch(fake_tq, GROUPS), {})
    assert dipo_trainer.dipo_state.num_pushed == 3 and len(dipo_trainer.dipo_state) == 24


def test_grpo_baseline_config_equals_verl_grpo_and_logs_dipo_metrics(compose, fake_tq):
    """The shipped GRPO baseline runs our estimator with the reallocation off: verl's GRPO values exactly,
    plus the dipo/* diagnostics, so comparison tables fill from either engine."""
    trainer = DiPOTrainerSync(compose("tool_grpo_qwen2.5-3b", ["actor_rollout_ref.rollout.n=4"]))
    batch, metrics = _batch(fake_tq, GROUPS), {}
    trainer._compute_advantage(batch, metrics)
    ours = {k: fake_tq.field("train", k, "advantages").clone() for k in batch.keys}
    grpo = DiPOTrainerSync(compose("tool_grpo_qwen2.5-3b", ["actor_rollout_ref.rollout.n=4", "algorithm.adv_estimator=grpo"]))
    PPOTrainerSync._compute_advantage(grpo, _batch(fake_tq, GROUPS), {})
    for k in batch.keys:
        torch.testing.assert_close(ours[k], fake_tq.field("train", k, "advantages"), rtol=0, atol=1e-6)
    assert metrics["dipo/frac_easy"] == pytest.approx(1 / 3) and "dipo/disentangled" in metrics
    assert metrics["dipo/frac_nonzero_adv"] == metrics["dipo/frac_nonzero_adv_grpo"]


def test_non_dipo_estimator_runs_verl_base_method(compose, fake_tq):
    cfg = compose("tool_grpo_qwen2.5-3b", ["actor_rollout_ref.rollout.n=4", "algorithm.adv_estimator=grpo"])
    trainer = DiPOTrainerSync(cfg)
    batch = _batch(fake_tq, GROUPS)
    trainer._compute_advantage(batch, {})
    ours = {k: fake_tq.field("train", k, "advantages").clone() for k in batch.keys}
    PPOTrainerSync._compute_advantage(trainer, _batch(fake_tq, GROUPS), {})
    for k in batch.keys:
        assert torch.equal(ours[k], fake_tq.field("train", k, "advantages"))
    # GRPO facts: the all-equal easy group has zero advantage; the mixed group is normalised
    assert all(_adv_scalar(fake_tq, f"e_{i}_0") == 0 for i in range(4))
    m = torch.tensor([4.0, 1.0, 4.0, 0.0])
    want = (m - m.mean()) / (m.std() + 1e-6)
    got = torch.tensor([_adv_scalar(fake_tq, f"m_{i}_0") for i in range(4)])
    assert torch.allclose(got, want, atol=1e-5)
    assert len(trainer.dipo_state) == 0


def test_missing_acc_is_a_clear_error():
    with pytest.raises(ValueError, match="must return a dict with 'score' and 'acc'"):
        acc_from_extra_fields([{"reward_extra_info": {"acc": 1}}, {"reward_extra_info": {"score": 2.0}}])
    assert acc_from_extra_fields([{"reward_extra_info": {"acc": True}}, {"reward_extra_info": {"success": 0}}]).tolist() == [1.0, 0.0]


def test_final_session_rows_broadcast_multi_output_sessions():
    final, row_to_final = final_session_rows(["u_0_0", "u_0_1", "u_1_0", "v_0_0"])
    assert final == [1, 2, 3]
    assert row_to_final == [0, 0, 1, 2]


def test_dynamic_sampling_refused_with_dipo(compose):
    cfg = compose("tool_dipo_qwen2.5-3b", ["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"])
    with pytest.raises(ConfigError, match="filter_groups.enable=false"):
        DiPOTrainerSync(cfg)


class _FakeActorWorkerGroup:
    """The GPU worker group's checkpoint interface (FSDP shards cannot be written on CPU)."""

    def __init__(self):
        self.saved, self.loaded = [], []

    def save_checkpoint(self, local_path, remote_path, global_steps, max_ckpt_to_keep=None):
        self.saved.append(local_path)

    def load_checkpoint(self, local_path, del_local_after_load=False):
        self.loaded.append(local_path)


def _with_checkpoint_parts(trainer):
    from torchdata.stateful_dataloader import StatefulDataLoader

    trainer.actor_rollout_wg = _FakeActorWorkerGroup()
    trainer.train_dataloader = StatefulDataLoader(list(range(8)), batch_size=2)
    return trainer


def test_dipo_state_survives_checkpoint_save_and_load(compose, fake_tq, tmp_path):
    overrides = ["actor_rollout_ref.rollout.n=4", f"trainer.default_local_dir={tmp_path}", "trainer.resume_mode=auto"]
    trainer = _with_checkpoint_parts(DiPOTrainerSync(compose("tool_dipo_qwen2.5-3b", overrides)))
    trainer._compute_advantage(_batch(fake_tq, GROUPS), {})
    trainer._compute_advantage(_batch(fake_tq, GROUPS), {})
    trainer.global_steps = 7
    trainer._save_checkpoint()
    assert (tmp_path / "global_step_7" / DIPO_STATE_FILE).exists()
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text() == "7"

    resumed = _with_checkpoint_parts(DiPOTrainerSync(compose("tool_dipo_qwen2.5-3b", overrides)))
    resumed._load_checkpoint()
    assert resumed.global_steps == 7
    assert resumed.actor_rollout_wg.loaded == [str(tmp_path / "global_step_7" / "actor")]
    before, after = trainer.dipo_state.state_dict(), resumed.dipo_state.state_dict()
    assert after["num_pushed"] == before["num_pushed"] == 2
    for a, b in zip(before["log_ppl"], after["log_ppl"], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(before["success"], after["success"], strict=True):
        assert torch.equal(a, b)

    # and the restored queue is used: the next step gives the same advantages as the original trainer's
    b1 = _batch(fake_tq, GROUPS)
    trainer._compute_advantage(b1, {})
    first = {k: _adv_scalar(fake_tq, k) for k in b1.keys}
    b2 = _batch(fake_tq, GROUPS)
    resumed._compute_advantage(b2, {})
    second = {k: _adv_scalar(fake_tq, k) for k in b2.keys}
    assert all(math.isclose(first[k], second[k], abs_tol=1e-9) for k in b1.keys)


def test_resume_disabled_keeps_a_fresh_queue(compose, tmp_path):
    overrides = [f"trainer.default_local_dir={tmp_path}", "trainer.resume_mode=disable"]
    trainer = _with_checkpoint_parts(DiPOTrainerSync(compose("tool_dipo_qwen2.5-3b", overrides)))
    trainer._load_checkpoint()
    assert trainer.global_steps == 0 and len(trainer.dipo_state) == 0


def test_task_runner_swaps_in_the_dipo_trainer(compose, monkeypatch):
    """Our TaskRunner makes verl's "sync" trainer DiPOTrainerSync before verl's own run() builds it.

    verl's TaskRunnerV1.run (TransferQueue + GPU workers) cannot run here, so it is replaced by a probe that
    records which class verl would instantiate; the Ray actor class itself is real and picklable.
    """
    import ray.cloudpickle
    from verl.trainer.main_ppo import TaskRunnerV1
    from verl.trainer.ppo.v1 import trainer_base

    from dipo_tools.verl_ext.main import _task_runner_class

    seen = {}

    def probe_run(self, config):
        seen["cls"] = trainer_base.get_trainer_cls(config.trainer.v1.trainer_mode)

    plain = _task_runner_class().__ray_actor_class__
    assert issubclass(plain, TaskRunnerV1.__ray_actor_class__)
    ray.cloudpickle.loads(ray.cloudpickle.dumps(plain))  # shipped to the Ray actor process
    # (patch after pickling: unpickling a by-value class re-applies its attributes to the live class)
    monkeypatch.setitem(trainer_base.TRAINER_REGISTRY, "sync", PPOTrainerSync)
    monkeypatch.setattr(TaskRunnerV1.__ray_actor_class__, "run", probe_run)
    plain().run(compose("tool_dipo_qwen2.5-3b", []))
    assert seen["cls"] is DiPOTrainerSync


def test_verl_padding_rows_stay_out_of_queue_and_groups(dipo_trainer, fake_tq):
    """verl pads a batch to a multiple of the data-parallel size with synthetic rows that copy row 0's
    extra_fields (so its acc) under a shared uid; they must not form a DiPO group or enter the queue."""
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    batch = _batch(fake_tq, GROUPS)
    batch.tags = [{"status": "success"} for _ in batch.keys]
    padded = upsample_batch_to_divisible_size(batch, 8, eos_token_id=0)
    pads = [k for k in padded.keys if k.startswith("pad")]
    assert len(padded) == 16 and len(pads) == 4
    for key in pads:  # the actor computes old log-probs for every row, padding included
        row = fake_tq.rows[("train", key)]
        row["old_log_probs"] = torch.zeros_like(row["response_mask"], dtype=torch.float32)
    metrics: dict = {}
    dipo_trainer._compute_advantage(padded, metrics)
    assert len(dipo_trainer.dipo_state) == 12 and metrics["dipo/padding_rows"] == 4
    assert metrics["dipo/frac_hard"] == pytest.approx(1 / 3)  # 3 real groups, no padding "group"
    for key in pads:
        assert torch.all(fake_tq.field("train", key, "advantages") == 0)
