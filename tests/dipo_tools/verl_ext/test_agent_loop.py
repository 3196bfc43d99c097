"""The dipo_tool_agent loop end to end through verl's own AgentLoopWorker, with a scripted model server.

Only the LLM server is fake (it cannot run here): it sits at verl's real interface
``server_manager.generate(request_id, *, prompt_ids, sampling_params, ...) -> TokenOutput`` and replays
scripted assistant messages. Everything else is real: verl's worker, padding and batch assembly, our
episode runner, the environments (a schema-file env and a BFCL backend) and the multi-turn reward.
"""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest


from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, _agent_loop_registry  # noqa: E402
from verl.protocol import DataProto  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from dipo_tools.data.env_tasks import env_task_row  # noqa: E402
from dipo_tools.verl_ext.agent_loop import AGENT_NAME, DiPOToolAgentLoop  # noqa: E402
from reward.multi_turn import score_episode  # noqa: E402
from tool_envs import Task  # noqa: E402
from tool_envs.parsing import format_tool_calls  # noqa: E402
from tool_envs.types import ToolCall  # noqa: E402

PROMPT_LEN, RESPONSE_LEN = 8192, 2048  # the tiny BPE spends many tokens on the BFCL tool schemas

INVENTORY_TASK = {
    "id": "inv_test_0", "envs": ["inventory"], "source": "test",
    "initial_state": {"inventory": {"stock": {"apple": 1, "orange": 2}}},
    "turns": [[{"role": "user", "content": "Add 8 oranges to the inventory."}],
              [{"role": "user", "content": "How many oranges are there now?"}]],
    "ground_truth": {"calls": [[{"name": "add_stock", "arguments": {"item": "orange", "quantity": 8}}],
                               [{"name": "check_stock", "arguments": {"item": "orange"}}]],
                     "final_state": None},
}
FS_TASK = {
    "id": "fs_test_0", "envs": ["GorillaFileSystem"], "source": "test",
    "initial_state": {"GorillaFileSystem": {"root": {"home": {"type": "directory", "contents": {
        "proj": {"type": "directory", "contents": {"notes.txt": {"type": "file", "content": "kelp\namber"}}}}}}}},
    "turns": [[{"role": "user", "content": "Go into proj and make a folder called old1."}],
              [{"role": "user", "content": "Show notes.txt sorted."}]],
    "ground_truth": {"calls": [[{"name": "cd", "arguments": {"folder": "proj"}},
                                {"name": "mkdir", "arguments": {"dir_name": "old1"}}],
                               [{"name": "sort", "arguments": {"file_name": "notes.txt"}}]],
                     "final_state": None},
}


def _calls(task: dict, turn: int) -> list[ToolCall]:
    return [ToolCall(c["name"], c["arguments"]) for c in task["ground_truth"]["calls"][turn]]


# Per episode: the assistant messages, in order (a message with calls, then a plain answer, per turn).
PERFECT = {
    "inv_test_0": [format_tool_calls(_calls(INVENTORY_TASK, 0), "hermes"), "Added 8 oranges.",
                   format_tool_calls(_calls(INVENTORY_TASK, 1), "hermes"), "There are 10 oranges."],
    "fs_test_0": [format_tool_calls(_calls(FS_TASK, 0), "hermes"), "Done.",
                  format_tool_calls(_calls(FS_TASK, 1), "hermes"), "amber then kelp."],
}
WRONG = {  # wrong quantity in turn 1, no call at all in turn 2
    "inv_test_0": [format_tool_calls([ToolCall("add_stock", {"item": "orange", "quantity": 3})], "hermes"),
                   "Added.", "I cannot tell."],
    "fs_test_0": ["I will not touch your files.", "Still no."],
}
SCRIPTED_TURN_CALLS = {  # the same episodes as [turn][step][calls], for the reward computed independently
    ("inv_test_0", "perfect"): [[_calls(INVENTORY_TASK, 0), []], [_calls(INVENTORY_TASK, 1), []]],
    ("fs_test_0", "perfect"): [[_calls(FS_TASK, 0), []], [_calls(FS_TASK, 1), []]],
    ("inv_test_0", "wrong"): [[[ToolCall("add_stock", {"item": "orange", "quantity": 3})], []], [[]]],
    ("fs_test_0", "wrong"): [[[]], [[]]],
}


class ScriptedServer:
    """verl's LLM server client interface, replaying scripted messages per episode (sticky request_id).

    Returns what verl's ``LLMServerClient.generate`` returns: the server's ``extra_fields`` (vLLM puts the
    weights version in ``global_steps``) plus the ``min_global_steps`` / ``max_global_steps`` the client adds.
    The weights version advances every ``steps_per_version`` calls, as under partial rollout.
    """

    def __init__(self, tokenizer, scripts: list[tuple[str, list[str]]]):
        self.tok = tokenizer
        self.end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pending = list(scripts)  # (task_id, messages) in the order episodes start
        self.by_request: dict[str, dict] = {}
        self.calls: list[dict] = []
        self.steps_per_version = 3

    def logprobs(self, n: int, offset: int) -> list[float]:
        return [-0.01 * (offset + i + 1) for i in range(n)]

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        await asyncio.sleep(0)  # a real server yields; interleave the episodes
        if request_id not in self.by_request:
            task_id, messages = self.pending.pop(0)
            text = self.tok.decode(prompt_ids)
            assert next(t for t in (INVENTORY_TASK, FS_TASK) if t["id"] == task_id)["turns"][0][0]["content"] in text
            self.by_request[request_id] = {"task_id": task_id, "messages": list(messages), "generated": [], "step": 0}
        ep = self.by_request[request_id]
        assert ep["messages"], "episode asked for more messages than scripted"
        ids = self.tok.encode(ep["messages"].pop(0), add_special_tokens=False) + [self.end_id]
        ids = ids[: sampling_params["max_tokens"]]
        lps = self.logprobs(len(ids), offset=100 * ep["step"])
        ep["generated"].append((list(ids), lps))
        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "ids": ids,
                           "params": dict(sampling_params)})
        ep["step"] += 1
        version = 5 + len(self.calls) // self.steps_per_version
        ep.setdefault("versions", []).append(version)
        fields = {"global_steps": version, "num_cached_tokens": 0}
        fields.setdefault("min_global_steps", version)
        fields.setdefault("max_global_steps", version)
        return TokenOutput(token_ids=ids, log_probs=lps, stop_reason="completed", extra_fields=fields)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from dipo_tools.models.tiny import build_tiny_pair

    tok, model = build_tiny_pair()
    path = tmp_path_factory.mktemp("tiny_model")
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def trainer_config(model_dir):
    from dipo_tools.verl_ext.main import compose_config

    return compose_config(None, [
        f"actor_rollout_ref.model.path={model_dir}",
        f"actor_rollout_ref.rollout.prompt_length={PROMPT_LEN}",
        f"actor_rollout_ref.rollout.response_length={RESPONSE_LEN}",
        f"data.max_prompt_length={PROMPT_LEN}",
        f"data.max_response_length={RESPONSE_LEN}",
        "actor_rollout_ref.rollout.n=1",
    ])


def _rows(specs: list[tuple[dict, str | None]]) -> DataProto:
    rows = [env_task_row(task, i, env=env, data_source="tool_env", split="train", where="test")
            for i, (task, env) in enumerate(specs)]
    non_tensor = {
        "raw_prompt": np.array([r["prompt"] for r in rows] + [None], dtype=object)[:-1],
        "extra_info": np.array([r["extra_info"] for r in rows], dtype=object),
        "agent_name": np.array([r["agent_name"] for r in rows], dtype=object),
        "data_source": np.array([r["data_source"] for r in rows], dtype=object),
        "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
        "index": np.arange(len(rows)),
    }
    return DataProto(non_tensor_batch=non_tensor, meta_info={"global_steps": 1, "validate": False})


def _segments(mask: list[int]) -> list[tuple[int, int, int]]:
    """Runs of equal mask values: (value, start, end)."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((mask[start], start, i))
            start = i
    return out


def test_agent_loop_is_registered():
    assert _agent_loop_registry[AGENT_NAME]["_target_"] == f"{DiPOToolAgentLoop.__module__}.DiPOToolAgentLoop"


def test_episodes_through_verls_agent_loop_worker(trainer_config):
    worker = AgentLoopWorker(trainer_config, llm_client=None)
    order = [(INVENTORY_TASK, "perfect"), (FS_TASK, "perfect"), (INVENTORY_TASK, "wrong"), (FS_TASK, "wrong")]
    server = ScriptedServer(worker.tokenizer, [(t["id"], (PERFECT if kind == "perfect" else WRONG)[t["id"]])
                                               for t, kind in order])
    worker.llm_client = server
    # the inventory rows name their schema-file env; the BFCL rows let env_for_task compose the task's envs
    batch = _rows([(t, "inventory" if t is INVENTORY_TASK else None) for t, _ in order])
    out = asyncio.run(worker.generate_sequences(batch))

    assert out.batch["responses"].shape == (4, RESPONSE_LEN) and out.batch["prompts"].shape == (4, PROMPT_LEN)
    episodes = list(server.by_request.values())
    assert [e["task_id"] for e in episodes] == [t["id"] for t, _ in order]
    for row, ((task, kind), ep) in enumerate(zip(order, episodes, strict=True)):
        mask = out.batch["response_mask"][row].tolist()
        resp = out.batch["responses"][row].tolist()
        lps = out.batch["rollout_log_probs"][row].tolist()
        valid = int(out.batch["attention_mask"][row, PROMPT_LEN:].sum())
        assert all(m == 0 for m in mask[valid:]) and all(lp == 0.0 for lp in lps[valid:])

        segs = _segments(mask[:valid])
        generated = [s for s in segs if s[0] == 1]
        # masks exact: every generated message is one mask-1 run, token for token, with its log-probs
        assert len(generated) == len(ep["generated"])
        for (_, a, b), (ids, lp) in zip(generated, ep["generated"], strict=True):
            assert resp[a:b] == ids
            assert lps[a:b] == pytest.approx(lp)
        context = [s for s in segs if s[0] == 0]
        assert all(lps[a] == 0.0 for _, a, b in context for a in range(a, b))
        context_text = [worker.tokenizer.decode(resp[a:b]) for _, a, b in context]
        if kind == "perfect":  # tool results then the next user turn come back as mask-0 context
            assert "<tool_response>" in context_text[0]
            assert task["turns"][1][0]["content"] in "".join(context_text)
        # token-in/token-out: each request's prompt is the previous prompt plus everything appended since
        calls = [c for c in server.calls if server.by_request[c["request_id"]] is ep]
        for prev, nxt in zip(calls, calls[1:]):
            assert nxt["prompt_ids"][: len(prev["prompt_ids"]) + len(prev["ids"])] == prev["prompt_ids"] + prev["ids"]
        assert calls[-1]["prompt_ids"][-1] != 0 and calls[0]["params"]["max_tokens"] == RESPONSE_LEN

        # rewards exact: the reward of the scripted calls, computed without the loop
        want = score_episode(SCRIPTED_TURN_CALLS[(task["id"], kind)], Task.from_dict(task))
        rm = out.batch["rm_scores"][row]
        assert float(rm[valid - 1]) == pytest.approx(want.score) and float(rm.abs().sum()) == pytest.approx(abs(want.score))
        assert out.non_tensor_batch["acc"][row] == float(want.success) == (1.0 if kind == "perfect" else 0.0)
        assert out.non_tensor_batch["score"][row] == pytest.approx(want.score)
        assert out.non_tensor_batch["success"][row] is (kind == "perfect")
        assert out.non_tensor_batch["episode_reward"][row]["acc"] == float(want.success)
        assert out.non_tensor_batch["__num_turns__"][row] > 2
        # the weights-version bounds reach verl's batch (TransferQueue tags in the V1 trainer): without
        # them PPOTrainer._compute_metrics fails on None at the end of the first step
        assert out.non_tensor_batch["min_global_steps"][row] == ep["versions"][0]
        assert out.non_tensor_batch["max_global_steps"][row] == ep["versions"][-1]

    perfect_scores = [float(out.batch["rm_scores"][i].sum()) for i in (0, 1)]
    wrong_scores = [float(out.batch["rm_scores"][i].sum()) for i in (2, 3)]
    assert min(perfect_scores) > max(wrong_scores)
    # every episode ended because the model answered each user turn, not on a budget limit
    assert out.non_tensor_batch["stop_reason"].tolist() == ["done"] * 4
    assert any(e["versions"][0] != e["versions"][-1] for e in episodes)  # bounds really differ somewhere
    bounds = np.array(out.non_tensor_batch["max_global_steps"].tolist(), dtype=int)  # as _compute_metrics
    assert bounds.min() >= 5


def test_row_without_task_is_a_clear_error(trainer_config):
    from dipo_tools.verl_ext.agent_loop import TaskRowError, task_and_env_from_row

    with pytest.raises(TaskRowError, match="dipo data prepare tasks"):
        task_and_env_from_row({"index": 0})
    with pytest.raises(TaskRowError, match="not valid JSON"):
        task_and_env_from_row({"task": "{oops"})
    task, env = task_and_env_from_row({"task": json.dumps(FS_TASK), "env": None})
    assert task.id == "fs_test_0" and "sort" in [t["function"]["name"] for t in env.tools]


def test_over_long_prompt_is_cut_before_the_episode(model_dir):
    """The prompt the server generates from is the prompt verl trains on (it used to be cut after the episode)."""
    from dipo_tools.verl_ext.main import compose_config

    cap = 96
    config = compose_config(None, [
        f"actor_rollout_ref.model.path={model_dir}", f"actor_rollout_ref.rollout.prompt_length={cap}",
        f"actor_rollout_ref.rollout.response_length={RESPONSE_LEN}", f"data.max_prompt_length={cap}",
        f"data.max_response_length={RESPONSE_LEN}", "actor_rollout_ref.rollout.n=1",
    ])
    worker = AgentLoopWorker(config, llm_client=None)
    server = ScriptedServer(worker.tokenizer, [(INVENTORY_TASK["id"], PERFECT[INVENTORY_TASK["id"]])])
    worker.llm_client = server
    out = asyncio.run(worker.generate_sequences(_rows([(INVENTORY_TASK, "inventory")])))
    first = server.calls[0]["prompt_ids"]
    assert len(first) == cap  # rendered with the tool schemas it is far longer; cut to the last `cap` tokens
    sent = out.batch["prompts"][0][out.batch["attention_mask"][0, :cap].bool()].tolist()
    assert sent == first
    assert out.non_tensor_batch["reward_extra_info"][0]["prompt_truncated"] == 1.0
