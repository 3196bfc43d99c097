"""The "dipo" estimator as verl sees it: registry, call sites, config, and plugin loading."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn
from verl.trainer.ppo.ray_trainer import compute_advantage

from dipo_tools.dipo import DiPOState
from dipo_tools.verl_ext.estimator import compute_dipo_outcome_advantage, dipo_config_from_algorithm


def make_batch(seed=0, groups=4, g=8, t=6):
    gen = torch.Generator().manual_seed(seed)
    b = groups * g
    mask = (torch.rand(b, t, generator=gen) > 0.2).long()
    mask[:, 0] = 1
    acc = (torch.rand(b, generator=gen) > 0.5).float()
    acc[:g] = 0  # one all-wrong group
    acc[g:2 * g] = 1  # one all-right group
    rewards = torch.zeros(b, t)
    rewards[:, -1] = acc * 4 - 3 + torch.rand(b, generator=gen)  # a shaped score
    old_log_probs = -torch.rand(b, t, generator=gen) * 2
    uids = np.array([f"uid-{i // g}" for i in range(b)], dtype=object)
    return rewards, mask, uids, old_log_probs, acc.numpy()


def test_registered_under_dipo():
    assert get_adv_estimator_fn("dipo") is compute_dipo_outcome_advantage


def test_disabled_matches_verl_grpo_token_for_token():
    rewards, mask, uids, old_lp, acc = make_batch()
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "dipo": {"enabled": False}})
    adv, ret = compute_dipo_outcome_advantage(rewards, mask, uids, old_log_probs=old_lp, acc=acc,
                                              state=DiPOState(), config=config)
    ref, _ = compute_grpo_outcome_advantage(rewards, mask, uids)
    assert torch.equal(adv, ref) and torch.equal(ret, adv)


def test_enabled_reallocates_in_extreme_groups_and_reports_stats():
    rewards, mask, uids, old_lp, acc = make_batch()
    state = DiPOState()
    config = OmegaConf.create({"dipo": {"gate": "none", "alpha": 0.1}})
    stats = {}
    adv, _ = compute_dipo_outcome_advantage(rewards, mask, uids, old_log_probs=old_lp, acc=acc, state=state,
                                            config=config, stats_out=stats)
    ref, _ = compute_grpo_outcome_advantage(rewards, mask, uids)
    diff_rows = torch.nonzero((adv - ref).abs().sum(-1) > 1e-7).flatten().tolist()
    assert diff_rows and set(diff_rows) <= set(range(16))  # only the two extreme groups changed
    assert torch.all(adv[mask == 0] == 0)  # broadcast over the response mask only
    assert stats["n_realloc_hard"] == 1 and stats["n_realloc_easy"] == 1 and len(state) == 32


def test_norm_flag_is_read_from_the_algorithm_config():
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": False, "dipo": {"alpha": 0.2, "min_side": 4}})
    cfg = dipo_config_from_algorithm(config)
    assert (cfg.norm_by_std, cfg.alpha, cfg.min_side) == (False, 0.2, 4)
    with pytest.raises(ValueError, match="valid fields"):
        dipo_config_from_algorithm(OmegaConf.create({"dipo": {"gaet": "none"}}))


def test_stock_verl_call_site_gets_a_clear_error():
    # verl's generic compute_advantage passes no old_log_probs to custom estimators.
    rewards, mask, uids, old_lp, _ = make_batch()
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask,
                                        "old_log_probs": old_lp}, non_tensors={"uid": uids})
    with pytest.raises(ValueError, match="dipo train --engine verl"):
        compute_advantage(data, "dipo", config=OmegaConf.create({"dipo": {}}))


def test_fresh_process_bare_import_verl_registers_dipo():
    code = ("import verl\n"
            "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
            "print(get_adv_estimator_fn('dipo').__module__)\n")
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "dipo_tools.verl_ext.estimator"


def test_conflicting_norm_settings_are_refused_not_overridden():
    # verl's norm_adv_by_std_in_grpo used to silently win over algorithm.dipo.norm_by_std
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "dipo": {"norm_by_std": False}})
    with pytest.raises(ValueError, match="contradicts algorithm.norm_adv_by_std_in_grpo"):
        dipo_config_from_algorithm(config)
    agree = OmegaConf.create({"norm_adv_by_std_in_grpo": False, "dipo": {"norm_by_std": False}})
    assert dipo_config_from_algorithm(agree).norm_by_std is False
