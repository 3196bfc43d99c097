"""Task-side options of the local engine used by the study tasks: unseen-text evaluation, the math reward
and per-task reference replies for the warm-up."""
from __future__ import annotations

import pytest

from dipo_tools.engines.local import LocalEngine, load_tasks_for, make_scorer


def test_eval_unseen_texts_gives_distinct_requests_never_seen_in_training(make_cfg):
    cfg = make_cfg("data.num_train=64", "data.num_eval=40", "data.eval_unseen_texts=true")
    train, ev, _ = load_tasks_for(cfg)
    texts = [tuple(t.user_texts()) for t in ev]
    assert len(ev) == 40 and len(set(texts)) == 40
    assert not set(texts) & {tuple(t.user_texts()) for t in train}
    _, plain, _ = load_tasks_for(make_cfg("data.num_train=64", "data.num_eval=40"))
    assert len({tuple(t.user_texts()) for t in plain}) < 40  # the generated held-out split repeats texts


def test_math_reward_and_reference_replies(make_cfg, tiny_tok):
    from dipo_tools.models import build_tiny_model

    cfg = make_cfg("data.env=math_api", "data.generator.answer=true", "data.generator.max_number=9",
                   "data.num_train=4", "data.num_eval=2", "reward.name=math", "rollout.max_new_tokens=96",
                   "rollout.max_response_tokens=400")
    train, ev, env = load_tasks_for(cfg)
    eng = LocalEngine(cfg, tokenizer=tiny_tok, model=build_tiny_model(tiny_tok, preset="test"), train_tasks=train,
                      eval_tasks=ev, env=env, log=False)
    trajs = eng.oracle_trajectories(train)
    assert [tr.response_text_steps[-1] for tr in trajs] == [t.metadata["reference_reply"] for t in train]
    scorer = make_scorer(cfg)
    right = [scorer(tr, t, 0) for tr, t in zip(trajs, train)]
    assert all(s.success and s.score == 1.0 and s.components["tool_calls"] == 1 for s in right)
    wrong = scorer(trajs[0], train[1], 0) if train[0].metadata["answer"] != train[1].metadata["answer"] else None
    assert wrong is None or (not wrong.success and wrong.score == -1.0)
    with pytest.raises(Exception, match="reward.name"):
        make_cfg("reward.name=maths")
