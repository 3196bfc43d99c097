"""The local engine end to end on a test-built tiny model: rollout -> reward -> DiPO -> verl loss update."""
from __future__ import annotations

import asyncio
import json
import math
import os

import pytest
import torch

from dipo_tools.engines.generation import BatchedGenerator
from dipo_tools.engines.local import pack_trajectories, token_logprobs


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_one_rl_step_updates_and_logs(make_engine):
    # gate=none reallocates every extreme group: a random model fails everything, so GRPO alone has no signal
    eng = make_engine("algorithm.name=dipo", "algorithm.dipo.gate=none")
    before = _params(eng.model)
    rows = eng.train(total_steps=1)
    eng.close()
    assert eng.step == 1
    changed = sum(not torch.equal(a, b) for a, b in zip(before, eng.model.parameters()))
    assert changed > 0, "no parameter changed"
    m = rows[-1]
    assert math.isfinite(m["actor/pg_loss"]) and math.isfinite(m["actor/grad_norm"])
    for key in ("train/reward", "train/success", "dipo/frac_hard", "dipo/frac_easy", "dipo/frac_nonzero_adv",
                "dipo/disentangled", "actor/entropy", "time/generation", "time/update", "time/reward"):
        assert key in m, key
    lines = open(os.path.join(eng.out_dir, "metrics.jsonl")).read().splitlines()
    assert json.loads(lines[-1])["step"] == 1
    assert os.listdir(os.path.join(eng.out_dir, "tensorboard"))
    # trajectories really went through the environment: every response has generated tokens
    assert m["train/response_tokens"] > 0


def _state_equal(a, b):
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        assert torch.allclose(va, vb, atol=1e-6, rtol=1e-5), ka


def test_resume_equivalence(make_engine, tmp_path):
    straight = make_engine("algorithm.dipo.gate=none", out=tmp_path / "a", log=False)
    init = [p.detach().clone() for p in straight.model.parameters()]
    straight.train(total_steps=3)
    assert any(not torch.equal(a, b) for a, b in zip(init, straight.model.parameters()))  # training did something

    first = make_engine("algorithm.dipo.gate=none", out=tmp_path / "b", log=False)
    first.train(total_steps=2)
    ckpt = first.save_checkpoint()
    assert os.path.exists(os.path.join(ckpt, "state.pt"))

    resumed = make_engine("algorithm.dipo.gate=none", "trainer.resume=auto", out=tmp_path / "b", log=False)
    assert resumed.step == 0
    resumed.train(total_steps=3)  # resumes at step 2 and runs one step
    assert resumed.step == 3
    _state_equal(straight.model, resumed.model)
    qa, sa = straight.dipo_state.queue()
    qb, sb = resumed.dipo_state.queue()
    assert torch.allclose(qa, qb, atol=1e-6) and torch.equal(sa, sb)
    assert straight.dipo_state.num_pushed == resumed.dipo_state.num_pushed == 3
    assert straight.sampler.state_dict() == resumed.sampler.state_dict()
    sa_opt, sb_opt = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.allclose(sa_opt[k]["exp_avg"], sb_opt[k]["exp_avg"], atol=1e-6) for k in sa_opt)


@pytest.mark.parametrize("algo", ["grpo", "dapo"])
def test_baselines_never_reallocate(make_engine, algo):
    eng = make_engine(f"algorithm.name={algo}", log=False)
    eng.train(total_steps=1)
    m = eng.train_step()
    # GRPO/DAPO never add the reallocated term: their advantages are exactly GRPO's
    assert m["dipo/frac_nonzero_adv"] == m["dipo/frac_nonzero_adv_grpo"]
    if algo == "dapo":
        expected = 1.0 - m["dipo/frac_easy"] - m["dipo/frac_hard"]
        # zero score variance implies extreme by success, but not conversely: kept >= normal groups
        assert m["train/kept_fraction"] >= expected - 1e-9


def test_generation_batches_and_logprobs_match_forward(tiny_tok):
    from dipo_tools.models import build_tiny_model

    model = build_tiny_model(tiny_tok, preset="test", seed=1)
    gen = BatchedGenerator(model, tiny_tok)
    prompts = [tiny_tok("<|im_start|>user\nAdd 3 apples<|im_end|>\n<|im_start|>assistant\n")["input_ids"][: 10 + i]
               for i in range(4)]
    torch.manual_seed(0)

    async def run():
        return await asyncio.gather(*[gen(p, {"temperature": 0.7, "max_tokens": 6 + i}) for i, p in enumerate(prompts)])

    outs = asyncio.run(run())
    assert gen.num_calls == 1 and gen.num_sequences == 4  # one batched generate for 4 concurrent episodes
    for i, (p, (ids, lps)) in enumerate(zip(prompts, outs)):
        assert 1 <= len(ids) <= 6 + i and len(lps) == len(ids)
        assert all(t != tiny_tok.eos_token_id for t in ids[:-1])  # cut right after EOS
        seq = torch.tensor([p + ids])
        ref, _ = token_logprobs(model, seq, torch.ones_like(seq), 0.7, keep=len(ids))
        assert torch.allclose(ref[0], torch.tensor(lps), atol=1e-4)


def test_pack_aligns_responses_right(tiny_tok, make_engine):
    eng = make_engine(log=False)
    trajs = eng.rollout(eng.train_tasks[:2], 2, 1.0)
    batch = pack_trajectories(trajs, tiny_tok.pad_token_id)
    for i, t in enumerate(trajs):
        r = len(t.response_ids)
        assert batch.input_ids[i, -r:].tolist() == t.response_ids
        assert batch.loss_mask[i, -r:].tolist() == [float(x) for x in t.response_mask]
        assert int(batch.attention_mask[i].sum()) == len(t.prompt_ids) + r


def test_no_dead_context_is_packed_and_rewards_are_kept(make_engine):
    """The last allowed turn makes the right call: it runs and is rewarded, but its tool result (which no model
    turn sees) does not widen the training batch."""
    eng = make_engine("rollout.max_assistant_turns=1", "rollout.max_new_tokens=96", log=False)
    tasks = eng.train_tasks[:4]
    trajs = eng.oracle_trajectories(tasks)  # the ground-truth call; no room left for the closing answer
    assert len(trajs) == len(tasks)
    scored = eng.score(trajs, tasks)
    assert all(s.success for s in scored), scored
    assert all(s.score == scored[0].score for s in scored), scored
    for t, task in zip(trajs, tasks):
        assert t.messages[-1]["role"] == "tool" and t.num_tool_calls == 1
        expected = eng.env_for(task).new_episode(task)
        expected.execute(task.gt_calls[0])
        assert t.final_state == expected.state()  # the call ran on the environment
        assert t.response_mask[-1] == 1
    batch = pack_trajectories(trajs, eng.tokenizer.pad_token_id)
    assert batch.input_ids.shape[1] == max(len(t.prompt_ids) + sum(t.response_mask) for t in trajs)


def test_sft_warmup_lowers_loss(make_engine):
    eng = make_engine("sft.steps=12", "sft.batch_size=8", "sft.lr=3e-3", log=False)
    losses = eng.sft_warmup()
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]


def test_evaluate_and_finish_writes_plots(make_engine):
    eng = make_engine("trainer.eval_every=1")
    eng.train(total_steps=1)
    plots = eng.finish()
    assert any(p.endswith("reward.png") for p in plots)
    assert os.path.exists(os.path.join(eng.out_dir, "final_model", "config.json"))
    rows = [json.loads(x) for x in open(os.path.join(eng.out_dir, "metrics.jsonl"))]
    assert "eval/reward" in rows[0] and rows[0]["step"] == 0
