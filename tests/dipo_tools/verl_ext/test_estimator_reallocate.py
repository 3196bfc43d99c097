"""The verl estimator honours ``algorithm.dipo.reallocate`` (read through DiPOConfig, like every DiPO option)."""
import dataclasses
import os

import pytest
import torch
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

import dipo_tools.verl_ext.config as verl_config_dir
from dipo_tools.dipo import DiPOConfig, DiPOState
from dipo_tools.verl_ext.estimator import compute_dipo_outcome_advantage, dipo_config_from_algorithm

from .test_estimator import make_batch


@pytest.mark.parametrize("side, counts", [("hard", (1, 0)), ("easy", (0, 1)), ("both", (1, 1))])
def test_reallocate_switch_is_honoured(side, counts):
    rewards, mask, uids, old_lp, acc = make_batch()  # group 0 is all wrong, group 1 all right
    stats = {}
    config = OmegaConf.create({"dipo": {"gate": "none", "reallocate": side}})
    adv, _ = compute_dipo_outcome_advantage(rewards, mask, uids, old_log_probs=old_lp, acc=acc, state=DiPOState(),
                                            config=config, stats_out=stats)
    ref, _ = compute_grpo_outcome_advantage(rewards, mask, uids)
    changed_groups = {i // 8 for i in torch.nonzero((adv - ref).abs().sum(-1) > 1e-7).flatten().tolist()}
    assert (stats["n_realloc_hard"], stats["n_realloc_easy"]) == counts
    assert changed_groups == {g for g, n in enumerate(counts) if n}


def test_dipo_base_yaml_lists_every_dipo_option():
    base = OmegaConf.load(os.path.join(os.path.dirname(verl_config_dir.__file__), "dipo_base.yaml"))
    # norm_by_std is verl's own algorithm.norm_adv_by_std_in_grpo
    assert set(base.algorithm.dipo) == {f.name for f in dataclasses.fields(DiPOConfig)} - {"norm_by_std"}
    assert dipo_config_from_algorithm(base.algorithm).reallocate == "both"
    with pytest.raises(ValueError, match="reallocate"):
        dipo_config_from_algorithm(OmegaConf.create({"dipo": {"reallocate": "neither"}}))
