"""The shared episode runner: token-in/token-out ids, masks and log-probs, turn by turn, with a scripted
``generate`` (the only fake: it stands in for an inference server at generate's real interface), a real
schema-file environment, the tiny run-time tokenizer and the real Qwen3 tokenizer + template."""
from __future__ import annotations

import asyncio
import sys
import textwrap

import pytest

from tool_envs import Task, load_env
from tool_envs.bfcl import MISSED_FUNCTION_MESSAGE
from tool_envs.chat import ChatRenderer
from tool_envs.hooks import GENERIC_HOOK
from tool_envs.parsing import format_tool_calls
from tool_envs.runner import (
    STOP_DONE,
    STOP_MAX_ASSISTANT,
    STOP_MAX_STEPS,
    STOP_MAX_TOKENS,
    RunnerConfig,
    run_episode,
)
from tool_envs.types import ToolCall

BACKEND = '''
class Counter:
    """A tiny stateful backend: one integer and a log of additions."""

    def __init__(self):
        self.value = 0
        self.log = []

    def _load(self, state):
        self.value = state.get("value", 0)

    def add(self, amount: int):
        self.value += amount
        self.log.append(amount)
        return {"value": self.value}

    def get(self):
        return self.value

    def reset(self):
        self.value = 0
        return "ok"
'''

SCHEMA = """
name: counter_rt
description: A counter.
backend:
  class: runner_counter_backend.Counter
  init_method: _load
limits:
  max_turns: 4
  max_calls_per_turn: 8
  call_timeout_s: null
tools:
  - type: function
    function:
      name: add
      description: Add an amount.
      parameters: {type: object, properties: {amount: {type: integer}}, required: [amount]}
  - type: function
    function:
      name: get
      description: Read the value.
      parameters: {type: object, properties: {}}
  - type: function
    function:
      name: reset
      description: Reset to zero.
      parameters: {type: object, properties: {}}
"""


@pytest.fixture(scope="module")
def counter_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("counter_env")
    (d / "runner_counter_backend.py").write_text(textwrap.dedent(BACKEND))
    (d / "counter.yaml").write_text(SCHEMA)
    sys.path.insert(0, str(d))
    try:
        yield load_env(str(d / "counter.yaml"))
    finally:
        sys.path.remove(str(d))


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from dipo_tools.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(params=["tiny", "qwen3"])
def tokenizer(request):
    return request.getfixturevalue("tiny_tokenizer" if request.param == "tiny" else "qwen_tokenizer")


def end_id(tok) -> int:
    return tok.convert_tokens_to_ids("<|im_end|>")


class ScriptedModel:
    """Replays pre-tokenised assistant replies; records what it was asked."""

    def __init__(self, tok, replies, close=True):
        self.tok = tok
        self.replies = list(replies)
        self.close = close
        self.calls: list[tuple[list[int], dict]] = []
        self.outputs: list[list[int]] = []
        self.logprobs: list[list[float]] = []

    async def __call__(self, ids, params):
        self.calls.append((list(ids), dict(params)))
        k = len(self.outputs)
        reply = self.replies[k] if k < len(self.replies) else "Nothing more to do."
        out = self.tok.encode(reply, add_special_tokens=False)
        if self.close:
            out = out + [end_id(self.tok)]
        out = out[: params["max_tokens"]]
        lps = [-(k + 1) - i / 1000 for i in range(len(out))]
        self.outputs.append(out)
        self.logprobs.append(lps)
        await asyncio.sleep(0)  # yield like a real server would
        return out, lps


def runs(mask, ids, value):
    """Maximal runs of ``ids`` where ``mask == value``."""
    out, cur = [], []
    for m, i in zip(mask, ids):
        if m == value:
            cur.append(i)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def two_turn_task(**extra):
    d = {
        "id": "counter-1",
        "envs": ["counter_rt"],
        "initial_state": {"counter_rt": {"value": 5}},
        "turns": [[{"role": "user", "content": "Add 3 and 4."}], [{"role": "user", "content": "What is it now?"}]],
    }
    d.update(extra)
    return Task.from_dict(d)


def hermes(*calls):
    return format_tool_calls([ToolCall(n, a) for n, a in calls], "hermes")


REPLIES = [
    hermes(("add", {"amount": 3}), ("add", {"amount": 4})),
    "Added both; the value is 12.",
    hermes(("get", {})),
    "It is 12.",
]


def run(tok, env, task, model, **cfg):
    return asyncio.run(
        run_episode(tokenizer=tok, env=env, task=task, generate=model, sampling_params={"temperature": 1.0},
                    config=RunnerConfig(**cfg))
    )


# --------------------------------------------------------------------------------------------- exactness
def test_ids_masks_logprobs_exact_turn_by_turn(tokenizer, counter_env):
    model = ScriptedModel(tokenizer, REPLIES)
    traj = run(tokenizer, counter_env, two_turn_task(), model)
    tok = tokenizer

    # Generated ids appear verbatim, in order, under mask 1 -- never re-tokenised.
    assert runs(traj.response_mask, traj.response_ids, 1) == model.outputs
    assert [tok.decode(r) for r in runs(traj.response_mask, traj.response_ids, 1)] == [r + "<|im_end|>" for r in REPLIES]
    assert runs(traj.response_mask, traj.response_logprobs, 1) == model.logprobs
    assert all(lp == 0.0 for m, lp in zip(traj.response_mask, traj.response_logprobs) if m == 0)
    assert len(traj.response_ids) == len(traj.response_mask) == len(traj.response_logprobs)

    # Token-in: each generate call got exactly the prompt plus everything so far.
    full = traj.prompt_ids + traj.response_ids
    pos = len(traj.prompt_ids)
    for (ids, params), out in zip(model.calls, model.outputs):
        assert ids == full[:pos]
        assert params["temperature"] == 1.0 and params["max_tokens"] == 4096 - (pos - len(traj.prompt_ids))
        pos += len(out)
        while pos < len(full) and traj.response_mask[pos - len(traj.prompt_ids)] == 0:
            pos += 1

    # Context tokens (mask 0) are the template's rendering of tool results / the next user turn.
    ctx = [tok.decode(r) for r in runs(traj.response_mask, traj.response_ids, 0)]
    assert ctx == [
        '\n<|im_start|>user\n<tool_response>\n{"value": 8}\n</tool_response>\n<tool_response>\n{"value": 12}\n'
        "</tool_response><|im_end|>\n<|im_start|>assistant\n",
        "\n<|im_start|>user\nWhat is it now?<|im_end|>\n<|im_start|>assistant\n",
        "\n<|im_start|>user\n<tool_response>\n12\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    ]

    # Where the template is append-only, prompt + response equals rendering the whole conversation (a
    # trailing user message keeps Qwen3 from adding an empty <think> block to the last assistant message).
    conv = traj.messages + [{"role": "user", "content": "END"}]
    rendered = tok.apply_chat_template(conv, tools=counter_env.tools, tokenize=False)
    expect = tok.encode(rendered, add_special_tokens=False)
    assert expect[: len(full)] == full
    assert tok.decode(expect[len(full):]) == "\n<|im_start|>user\nEND<|im_end|>\n"
    # ... and the prompt is the template's own prompt rendering.
    prompt = tok.apply_chat_template(traj.messages[:1], tools=counter_env.tools, tokenize=False, add_generation_prompt=True)
    assert traj.prompt_ids == tok.encode(prompt, add_special_tokens=False)

    # Trace, state and counts.
    assert [[s.text for s in turn] for turn in traj.turns] == [REPLIES[:2], REPLIES[2:]]
    assert traj.turns[0][0].calls == [ToolCall("add", {"amount": 3}), ToolCall("add", {"amount": 4})]
    assert [r.content for r in traj.turns[0][0].results] == ['{"value": 8}', '{"value": 12}']
    assert traj.turn_calls == [[ToolCall("add", {"amount": 3}), ToolCall("add", {"amount": 4})], [ToolCall("get", {})]]
    assert traj.final_state == {"Counter": {"value": 12, "log": [3, 4]}}
    assert traj.episode.backends["Counter"].value == 12
    assert (traj.num_assistant_turns, traj.num_tool_calls, traj.num_user_turns) == (4, 3, 2)
    assert traj.stop_reason == STOP_DONE and traj.num_parse_errors == 0


def test_qwen3_thinking_is_kept_token_for_token(qwen_tokenizer, counter_env):
    """Qwen3's template drops earlier <think> blocks on re-rendering; the runner must not."""
    tok = qwen_tokenizer
    think = "<think>\nI need to add.\n</think>\n\n"
    replies = [think + REPLIES[0], "<think>\nok\n</think>\n\n" + REPLIES[1], REPLIES[2], REPLIES[3]]
    model = ScriptedModel(tok, replies)
    traj = run(tok, counter_env, two_turn_task(), model)
    assert runs(traj.response_mask, traj.response_ids, 1) == model.outputs
    assert traj.turns[0][0].calls == [ToolCall("add", {"amount": 3}), ToolCall("add", {"amount": 4})]
    assert tok.decode(traj.response_ids).count("I need to add.") == 1
    # Re-rendering drops the first turn's reasoning once a later user turn exists: a runner that
    # re-tokenised the conversation would train on ids the model never generated.
    rerendered = tok.apply_chat_template(traj.messages, tools=counter_env.tools, tokenize=False)
    assert "I need to add." not in rerendered


def test_qwen3_enable_thinking_false_generation_prompt(qwen_tokenizer, counter_env):
    tok = qwen_tokenizer
    model = ScriptedModel(tok, REPLIES)
    traj = run(tok, counter_env, two_turn_task(), model, chat_template_kwargs={"enable_thinking": False})
    assert tok.decode(traj.prompt_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    for ctx in runs(traj.response_mask, traj.response_ids, 0):
        assert tok.decode(ctx).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert runs(traj.response_mask, traj.response_ids, 1) == model.outputs


# --------------------------------------------------------------------------------------------- robustness
def test_parse_error_goes_back_to_the_model(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer
    replies = ['<tool_call>\n{"name": "add", "arguments": {"amount": 3}\n</tool_call>', hermes(("add", {"amount": 3})), "Done."]
    model = ScriptedModel(tok, replies)
    traj = run(tok, counter_env, two_turn_task(turns=[[{"role": "user", "content": "Add 3."}]]), model)
    first = traj.turns[0][0]
    assert first.parse_error and first.parse_error.startswith("Tool call parse error")
    assert first.calls == [] and first.results == []
    ctx = tok.decode(runs(traj.response_mask, traj.response_ids, 0)[0])
    assert "<tool_response>\nTool call parse error" in ctx
    assert traj.num_parse_errors == 1 and traj.final_state["Counter"]["value"] == 8
    assert traj.stop_reason == STOP_DONE and len(traj.turns[0]) == 3


def test_length_cut_message_is_closed_before_the_next_message(tokenizer, counter_env):
    tok = tokenizer
    long_reply = "Let me think about this for a while " * 10
    model = ScriptedModel(tok, [long_reply, "Second turn answer."], close=False)
    traj = run(tok, counter_env, two_turn_task(), model, max_new_tokens_per_step=6)
    gen = runs(traj.response_mask, traj.response_ids, 1)
    assert len(gen[0]) == 6 and end_id(tok) not in gen[0]
    assert traj.turns[0][0].stopped is False
    ctx = runs(traj.response_mask, traj.response_ids, 0)[0]
    assert ctx[0] == end_id(tok)  # the cut message is closed by a context (mask 0) token
    assert tok.decode(ctx) == "<|im_end|>\n<|im_start|>user\nWhat is it now?<|im_end|>\n<|im_start|>assistant\n"


def test_response_budget_stops_the_episode(tokenizer, counter_env):
    model = ScriptedModel(tokenizer, REPLIES)
    full = run(tokenizer, counter_env, two_turn_task(), ScriptedModel(tokenizer, REPLIES))
    budget = len(full.response_ids) - 5
    traj = run(tokenizer, counter_env, two_turn_task(), model, max_response_tokens=budget)
    assert traj.stop_reason == STOP_MAX_TOKENS
    assert len(traj.response_ids) <= budget
    assert traj.response_ids == full.response_ids[: len(traj.response_ids)]
    assert model.calls[-1][1]["max_tokens"] == budget - (len(model.calls[-1][0]) - len(traj.prompt_ids))
    # A budget too small for the tool results: the calls ran, their results are traced, nothing is appended.
    small = len(model.outputs[0]) + 3
    traj = run(tokenizer, counter_env, two_turn_task(), ScriptedModel(tokenizer, REPLIES), max_response_tokens=small)
    assert traj.stop_reason == STOP_MAX_TOKENS and traj.response_mask == [1] * len(traj.response_ids)
    assert traj.turns[0][0].results and traj.final_state["Counter"]["value"] == 12


def test_step_and_assistant_limits(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer
    looping = [hermes(("get", {}))] * 10
    traj = run(tok, counter_env, two_turn_task(), ScriptedModel(tok, looping))
    assert traj.stop_reason == STOP_MAX_STEPS and len(traj.turns) == 1
    assert len(traj.turns[0]) == counter_env.limits.max_turns == 4  # env default when config has none
    traj = run(tok, counter_env, two_turn_task(), ScriptedModel(tok, looping), max_steps_per_turn=2)
    assert traj.stop_reason == STOP_MAX_STEPS and len(traj.turns[0]) == 2
    traj = run(tok, counter_env, two_turn_task(), ScriptedModel(tok, REPLIES), max_assistant_turns=3)
    assert traj.stop_reason == STOP_MAX_ASSISTANT and traj.num_assistant_turns == 3
    assert [len(t) for t in traj.turns] == [2, 1]


@pytest.mark.parametrize("limit", [{"max_assistant_turns": 1}, {"max_steps_per_turn": 1}])
def test_context_after_the_last_generated_token_is_not_kept(tokenizer, counter_env, limit):
    """Tool results or a parse error after the last allowed message reach no model turn: they stay in the
    messages and the trace, and the calls change the state, but the token streams end with the generated ids."""
    model = ScriptedModel(tokenizer, REPLIES)
    traj = run(tokenizer, counter_env, two_turn_task(), model, **limit)
    assert traj.stop_reason in (STOP_MAX_ASSISTANT, STOP_MAX_STEPS)
    assert traj.response_ids == model.outputs[0] and traj.response_logprobs == model.logprobs[0]
    assert traj.response_mask == [1] * len(model.outputs[0])
    assert [r.content for r in traj.turns[0][0].results] == ['{"value": 8}', '{"value": 12}']
    assert traj.messages[-1] == {"role": "tool", "name": "add", "content": '{"value": 12}'}
    assert traj.final_state["Counter"]["value"] == 12 and traj.num_tool_calls == 2

    bad = '<tool_call>\n{"name": "add", "arguments": {"amount": 3}\n</tool_call>'
    model = ScriptedModel(tokenizer, [bad])
    traj = run(tokenizer, counter_env, two_turn_task(), model, **limit)
    assert traj.response_ids == model.outputs[0] and traj.response_mask == [1] * len(model.outputs[0])
    assert traj.turns[0][0].parse_error and traj.messages[-1]["name"] == "parse_error"
    assert traj.num_parse_errors == 1 and traj.final_state["Counter"]["value"] == 5


def test_calls_beyond_the_per_message_limit_are_refused(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer
    replies = [hermes(("add", {"amount": 1}), ("add", {"amount": 1}), ("add", {"amount": 1})), "ok"]
    traj = run(tok, counter_env, two_turn_task(turns=[[{"role": "user", "content": "x"}]]), ScriptedModel(tok, replies), max_calls_per_turn=2)
    res = traj.turns[0][0].results
    assert [r.error for r in res] == [False, False, True] and "at most 2 calls" in res[2].content
    assert traj.final_state["Counter"]["value"] == 7 and traj.num_tool_calls == 3


def test_logprobs_optional_and_checked(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer

    async def no_lps(ids, params):
        return tok.encode("Fine.", add_special_tokens=False) + [end_id(tok)], None

    traj = asyncio.run(run_episode(tokenizer=tok, env=counter_env, task=two_turn_task(), generate=no_lps))
    assert set(traj.response_logprobs) == {0.0} and traj.stop_reason == STOP_DONE

    async def bad(ids, params):
        return [1, 2, 3], [0.0]

    with pytest.raises(ValueError, match="must align"):
        asyncio.run(run_episode(tokenizer=tok, env=counter_env, task=two_turn_task(), generate=bad))


def test_config_validation():
    with pytest.raises(ValueError, match="tool_format"):
        RunnerConfig(tool_format="xml")
    with pytest.raises(ValueError, match="max_response_tokens"):
        RunnerConfig(max_response_tokens=0)
    with pytest.raises(ValueError, match="unknown RunnerConfig field"):
        RunnerConfig.from_mapping({"max_turns": 3})
    assert RunnerConfig.from_mapping({"tool_format": "python"}).tool_format == "python"


# --------------------------------------------------------------------------------------------- formats / features
def test_python_format_with_positional_args(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer
    model = ScriptedModel(tok, ["[add(3), add(amount=1)]", "I added 4."])
    traj = run(tok, counter_env, two_turn_task(turns=[[{"role": "user", "content": "x"}]]), model, tool_format="python")
    assert traj.final_state["Counter"]["value"] == 9
    assert [r.error for r in traj.turns[0][0].results] == [False, False]


def test_toolrl_format_and_system_prompt(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer
    reply = '<think>add</think>\n<tool_call>\n{"name": "add", "parameters": {"amount": 2}}\n</tool_call>'
    model = ScriptedModel(tok, [reply, "<think>done</think>\n<response>ok</response>"])
    task = two_turn_task(turns=[[{"role": "user", "content": "x"}]], system_prompt="SYS: use tools.")
    traj = run(tok, counter_env, task, model, tool_format="toolrl", pass_tools_to_template=False)
    assert traj.final_state["Counter"]["value"] == 7
    prompt = tok.decode(traj.prompt_ids)
    assert prompt.startswith("<|im_start|>system\nSYS: use tools.<|im_end|>") and "<tools>" not in prompt


def test_miss_func_tools_revealed_at_their_turn(tokenizer, counter_env):
    tok = tokenizer
    task = two_turn_task(turns=[[{"role": "user", "content": "Reset it."}], []], missed_functions={"1": ["reset"]})
    model = ScriptedModel(tok, [hermes(("reset", {})), "I cannot reset.", hermes(("reset", {})), "Reset."])
    traj = run(tok, counter_env, task, model, block_hidden_tools=True)
    assert '"reset"' not in tok.decode(traj.prompt_ids)
    assert traj.turns[0][0].results[0].error and "unknown tool" in traj.turns[0][0].results[0].content
    reveal = tok.decode(runs(traj.response_mask, traj.response_ids, 0)[1])
    assert GENERIC_HOOK.reveal_message in reveal and '"name": "reset"' in reveal
    assert traj.turns[1][0].results[0].content == "ok" and traj.final_state["Counter"]["value"] == 0
    assert traj.messages[-4]["role"] == "user" and traj.messages[-4]["content"].startswith(GENERIC_HOOK.reveal_message)
    # Default (BFCL's rule): a hidden tool is not shown but still runs when the model guesses its name.
    traj = run(tok, counter_env, task, ScriptedModel(tok, model.replies))
    assert '"reset"' not in tok.decode(traj.prompt_ids) and traj.turns[0][0].results[0].content == "ok"


def test_reveal_message_comes_from_the_environment_unless_configured(tokenizer, counter_env):
    task = two_turn_task(turns=[[{"role": "user", "content": "Reset it."}], []], missed_functions={"1": ["reset"]})
    replies = ["Later.", hermes(("reset", {})), "Reset."]
    traj = run(tokenizer, counter_env, task, ScriptedModel(tokenizer, replies), reveal_message="Try again now.")
    users = [m["content"] for m in traj.messages if m["role"] == "user"]
    assert users[-1].startswith("Try again now.") and GENERIC_HOOK.reveal_message not in users[-1]


def test_concurrent_episodes_are_independent(tiny_tokenizer, counter_env):
    tok = tiny_tokenizer
    renderer = ChatRenderer(tok)
    task = two_turn_task(turns=[[{"role": "user", "content": "Add."}]])

    async def main():
        models = [ScriptedModel(tok, [hermes(("add", {"amount": k})), hermes(("add", {"amount": k})), "done"]) for k in range(32)]
        return await asyncio.gather(*(
            run_episode(tokenizer=tok, env=counter_env, task=task, generate=m, renderer=renderer) for m in models
        ))

    trajs = asyncio.run(main())
    assert [t.final_state["Counter"]["value"] for t in trajs] == [5 + 2 * k for k in range(32)]
    assert len({id(t.episode) for t in trajs}) == 32


def test_bfcl_ground_truth_through_the_runner(tiny_tokenizer, bfcl_by_id):
    """A scripted model that replays BFCL's ground truth (python format) passes BFCL's checker, incl. a
    miss_func entry whose held-out function is revealed by the runner."""
    from tool_envs import env_for_task
    from reward.multi_turn import check_turns

    tok = tiny_tokenizer
    for task_id in ("multi_turn_base_0", "multi_turn_miss_func_0"):
        task = bfcl_by_id[task_id]
        replies = []
        for calls in task.gt_calls:
            if calls:
                replies.append(format_tool_calls(calls, "python"))
            replies.append("Done.")
        model = ScriptedModel(tok, replies)
        traj = run(tok, env_for_task(task), task, model, tool_format="python", max_response_tokens=200_000)
        assert traj.stop_reason == STOP_DONE and len(traj.turns) == len(task.turns)
        assert not any(r.error for turn in traj.turns for s in turn for r in s.results), task_id
        verdict = check_turns(task, [[s.calls for s in turn] for turn in traj.turns])
        assert verdict["valid"], (task_id, verdict)
        if task.missed_functions:
            hidden = [n for names in task.missed_functions.values() for n in names]
            assert all(f'"name": "{n}"' not in tok.decode(traj.prompt_ids) for n in hidden)


def test_tokenizer_without_chat_template_is_a_clear_error(tiny_tokenizer, counter_env):
    import copy

    from tool_envs.chat import ChatTemplateError

    tok = copy.copy(tiny_tokenizer)
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="no chat_template"):
        asyncio.run(run_episode(tokenizer=tok, env=counter_env, task=two_turn_task(), generate=ScriptedModel(tok, [])))
    assert tiny_tokenizer.chat_template  # the shared fixture is untouched


# ----------------------------------------------------------------------------------- pinned trajectories
# Digests of whole trajectories (ids, masks, log-probs, trace, messages, state) for scenarios that cover
# every branch of the runner's state machine, recorded before it was restructured: any change to what an
# episode produces fails here. Regenerate only for a deliberate behaviour change.
PINNED_SCENARIOS = {
    "two_turns": (lambda: two_turn_task(), REPLIES, True, {}),
    "parse_error_then_call": (
        lambda: two_turn_task(),
        ["<tool_call>\n{bad json\n</tool_call>", hermes(("add", {"amount": 1})), "ok", "fine"], True, {}),
    "calls_over_the_limit": (lambda: two_turn_task(), [hermes(("add", {"amount": 1}), ("get", {}))], True,
                             {"max_calls_per_turn": 1}),
    "reveal_on_empty_turn": (
        lambda: two_turn_task(turns=[[{"role": "user", "content": "Reset it."}], []],
                              missed_functions={"1": ["reset"]}),
        # pinned with BFCL's sentence, the default when it was pinned (now the BFCL hook's, not the runner's)
        ["No tool for that.", hermes(("reset", {})), "Done."], True, {"reveal_message": MISSED_FUNCTION_MESSAGE}),
    "empty_turn_nothing_to_reveal": (
        lambda: two_turn_task(turns=[[{"role": "user", "content": "Add 2."}], [], [{"role": "user", "content": "Now?"}]]),
        [hermes(("add", {"amount": 2})), "Added.", "7."], True, {}),
    "token_budget": (lambda: two_turn_task(), REPLIES, True, {"max_response_tokens": 60}),
    "steps_per_turn": (lambda: two_turn_task(), [hermes(("get", {}))] * 5, True, {"max_steps_per_turn": 2}),
    "assistant_turns": (lambda: two_turn_task(), REPLIES, True, {"max_assistant_turns": 3}),
    "unclosed_steps": (lambda: two_turn_task(), REPLIES, False, {"max_new_tokens_per_step": 12}),
    "prompt_cap": (lambda: two_turn_task(), REPLIES, True, {"max_prompt_tokens": 20}),
}

PINNED_DIGESTS = {
    "assistant_turns": "afeb211d68ca75d6",
    "calls_over_the_limit": "c5b3cacf4e466afb",
    "empty_turn_nothing_to_reveal": "33ba55205a2ab496",
    "parse_error_then_call": "3ec87b23c3341f90",
    "prompt_cap": "f6677abf59deacd9",
    "reveal_on_empty_turn": "4f88d4b47076b109",
    "steps_per_turn": "c00e1f5110e9ee3d",
    "token_budget": "3482b2019dae776e",
    "two_turns": "0f16c6d7d864b47d",
    "unclosed_steps": "af279d23c432f542",
}


def trajectory_digest(traj) -> str:
    import hashlib
    import json

    record = {
        "prompt": traj.prompt_ids, "ids": traj.response_ids, "mask": traj.response_mask,
        "lps": traj.response_logprobs, "stop": traj.stop_reason, "state": traj.final_state,
        "counts": [traj.num_assistant_turns, traj.num_tool_calls, traj.num_user_turns, traj.num_parse_errors,
                   traj.prompt_truncated, len(traj.turn_snapshots)],
        "turns": [[[s.text, [[c.name, c.arguments] for c in s.calls],
                    [[r.name, r.content, r.error] for r in s.results], s.parse_error, s.num_tokens, s.stopped]
                   for s in turn] for turn in traj.turns],
        "messages": traj.messages,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


@pytest.mark.parametrize("scenario", sorted(PINNED_SCENARIOS))
def test_pinned_trajectories(qwen_tokenizer, counter_env, scenario):
    make_task, replies, close, cfg = PINNED_SCENARIOS[scenario]
    traj = run(qwen_tokenizer, counter_env, make_task(), ScriptedModel(qwen_tokenizer, replies, close=close), **cfg)
    assert trajectory_digest(traj) == PINNED_DIGESTS[scenario], (scenario, traj.stop_reason)
