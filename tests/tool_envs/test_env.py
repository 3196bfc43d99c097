"""The executor: per-call checks, coercion policy, timeouts, errors, truncation, replay, state.

Everything a call goes through must behave the same in both isolations, so most tests run twice.
"""
from __future__ import annotations

import datetime
import json
import textwrap
import threading
import time

import pytest

from tool_envs import Limits, ToolCall, ToolEnv, public_state, spec_from_mapping
from tool_envs.executor import stringify_result

BACKEND_SRC = textwrap.dedent(
    '''
    import time

    class Counter:
        def __init__(self):
            self.value = 0
            self.tags = set()
            self._secret = "hidden"

        def setup(self, state, long_context=False):
            self.value = state.get("value", 0)
            self.long = long_context

        def add(self, amount, note=""):
            self.value += amount
            return {"value": self.value, "note": note}

        def fail(self):
            raise KeyError("boom")

        def big(self, n):
            return "x" * n

        def odd(self):
            return {"when": object()}

        def items(self):
            return [1, 2]

        def hang(self):
            self.value = -999
            while True:  # pure Python: interruptible in-process, killed in a worker process
                pass

        def sleep(self, s):
            time.sleep(s)  # blocked in C: cannot be interrupted in-process
            self.value = -999
            return "late"

        def flag(self, on, ratio=1.0):
            self.value = (on, ratio)
            return "ok"
    '''
)


@pytest.fixture(params=["thread", "process"])
def isolation(request):
    return request.param


@pytest.fixture()
def counter_env(tmp_path, monkeypatch, isolation):
    (tmp_path / "counter_backend_mod.py").write_text(BACKEND_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))

    def tool(name, props=None, required=None):
        return {"type": "function", "function": {"name": name, "description": name, "parameters": {"type": "object", "properties": props or {}, "required": required or [], "additionalProperties": False}}}

    def make(checking="coerce", isolation=isolation, **limits):
        spec = spec_from_mapping(
            {
                "name": "counter",
                "isolation": isolation,
                "argument_checking": checking,
                "backend": {"class": "counter_backend_mod.Counter", "init_method": "setup", "init_options": ["long_context"]},
                "limits": {"max_output_chars": 200, "call_timeout_s": 0.5, "max_calls_per_turn": 3, **limits},
                "tools": [
                    tool("add", {"amount": {"type": "integer"}, "note": {"type": "string"}}, ["amount"]),
                    tool("fail"),
                    tool("big", {"n": {"type": "integer"}}, ["n"]),
                    tool("odd"),
                    tool("items"),
                    tool("hang"),
                    tool("sleep", {"s": {"type": "number"}}, ["s"]),
                    tool("flag", {"on": {"type": "boolean"}, "ratio": {"type": "number"}}, ["on"]),
                ],
            },
            source="counter.yaml",
        )
        return ToolEnv(spec)

    return make


def test_initial_state_hook_and_isolation(counter_env):
    env = counter_env()
    a = env.new_episode({"initial_state": {"counter": {"value": 5}}, "long_context": True})
    b = env.new_episode({"initial_state": {"Counter": {"value": 1}}})  # keyed by class name works too
    assert a.execute([ToolCall("add", {"amount": 2})])[0].content == '{"value": 7, "note": ""}'
    assert a.state()["Counter"]["value"] == 7 and a.backends["Counter"].long is True
    assert b.state()["Counter"]["value"] == 1 and b.backends["Counter"].long is False
    assert "_secret" not in a.state()["Counter"]
    assert a.isolation == env.isolation


def test_unknown_private_and_hostile_names_are_errors(counter_env):
    ep = counter_env().new_episode()
    for name in ("nope", "setup", "__init__", "_secret", "__import__('os').system", "add; import os"):
        r = ep.execute([ToolCall(name, {})])[0]
        assert r.error and "unknown tool" in r.content and r.content.startswith("Error during execution: ")
    assert ep.state()["Counter"]["value"] == 0


def test_argument_validation_and_coercion_policy(counter_env):
    ep = counter_env().new_episode()
    ok = ep.execute([ToolCall("add", {"amount": "3"}), ToolCall("add", {"amount": 2.0}), ToolCall("flag", {"on": "TRUE", "ratio": "0.5"})])
    assert [r.error for r in ok] == [False, False, False]
    assert ep.backends["Counter"].value == (True, 0.5)
    assert json.loads(ok[0].content)["value"] == 3 and type(json.loads(ok[1].content)["value"]) is int
    bad = ep.execute([ToolCall("add", {"amount": "3.5"}), ToolCall("add", {}), ToolCall("add", {"amount": 1, "extra": 2})])
    assert all(r.error for r in bad)
    assert "'3.5' is not of type 'integer'" in bad[0].content and "$.amount" in bad[0].content
    assert "'amount' is a required property" in bad[1].content
    assert "extra" in bad[2].content
    r = ep.execute([ToolCall("add", ["not", "a", "dict"])])[0]  # type: ignore[arg-type]
    assert r.error and "must be a JSON object" in r.content


def test_strict_and_off_modes(counter_env):
    strict = counter_env("strict").new_episode()
    assert strict.execute([ToolCall("add", {"amount": "3"})])[0].error
    off = counter_env("off").new_episode()
    r = off.execute([ToolCall("add", {"amount": 3, "bogus": 1})])[0]  # the backend itself rejects
    assert r.error and "unexpected keyword argument 'bogus'" in r.content


def test_positional_arguments_are_bound_by_signature(counter_env):
    ep = counter_env().new_episode()
    r = ep.execute([ToolCall("add", {"__args__": [4, "four"]})])[0]
    assert json.loads(r.content) == {"value": 4, "note": "four"}
    r = ep.execute([ToolCall("add", {"__args__": [1, "a", "b"]})])[0]
    assert r.error and "at most 2 positional" in r.content


def test_exceptions_and_stringification(counter_env):
    ep = counter_env().new_episode()
    fail, odd, items = ep.execute([ToolCall("fail", {}), ToolCall("odd", {}), ToolCall("items", {})])
    assert fail.error and fail.content == "Error during execution: 'boom'"
    assert not odd.error and odd.content.startswith("{'when': <object object")
    assert items.content == "[1, 2]"
    assert stringify_result("s") == "s" and stringify_result({"a": 1}) == '{"a": 1}' and stringify_result(None) == "None"


def test_truncation_and_call_limit(counter_env):
    ep = counter_env().new_episode()
    r = ep.execute([ToolCall("big", {"n": 500})])[0]
    assert r.truncated and len(r.content) == 200 and "truncated 300 characters" in r.content
    assert not ep.execute([ToolCall("big", {"n": 200})])[0].truncated
    rs = ep.execute([ToolCall("add", {"amount": 1})] * 5)
    assert [r.error for r in rs] == [False, False, False, True, True]
    assert "at most 3 calls" in rs[-1].content and ep.backends["Counter"].value == 3


@pytest.mark.parametrize("isolation", ["thread"])
def test_thread_timeout_interrupts_python_and_marks_episode_broken(counter_env):
    env = counter_env()
    ep = env.new_episode()
    threads = threading.active_count()
    t0 = time.monotonic()
    r = ep.execute([ToolCall("hang", {})])[0]
    assert time.monotonic() - t0 < 5  # the spinning call was interrupted, not waited out
    assert r.error and "did not finish within 0.5 s" in r.content
    later = ep.execute([ToolCall("add", {"amount": 1})])[0]
    assert later.error and "timed out" in later.content
    other = env.new_episode()  # other episodes are unaffected
    assert not other.execute([ToolCall("add", {"amount": 1})])[0].error
    assert threading.active_count() <= threads + 1  # at most the watchdog: no spinning thread left behind


@pytest.mark.parametrize("isolation", ["thread"])
def test_thread_async_gives_up_on_a_call_blocked_in_c(counter_env, run_with_heartbeat):
    from tool_envs.executor import configure_executor, executor_config

    old = executor_config().abandon_grace_s
    configure_executor(abandon_grace_s=0.2)
    try:
        ep = counter_env().new_episode()

        (r,), elapsed, ticks = run_with_heartbeat(lambda: ep.aexecute([ToolCall("sleep", {"s": 10})]))
        assert r.error and "did not finish within 0.5 s" in r.content
        assert elapsed < 6  # given up after timeout + grace, not after the 10 s the call takes
        assert ticks >= 1  # the loop kept running while the thread was stuck
        assert ep.broken
    finally:
        configure_executor(abandon_grace_s=old)


@pytest.mark.parametrize("isolation", ["process"])
def test_process_timeout_kills_the_call_and_the_episode_goes_on(counter_env):
    ep = counter_env().new_episode({"initial_state": {"counter": {"value": 5}}})
    t0 = time.monotonic()
    r = ep.execute([ToolCall("hang", {})])[0]
    assert time.monotonic() - t0 < 5
    assert r.error and "did not finish within 0.5 s" in r.content and "no effect" in r.content
    assert ep.state()["Counter"]["value"] == 5  # hang() had set -999 before spinning: undone
    ok = ep.execute([ToolCall("add", {"amount": 1})])[0]
    assert not ok.error and json.loads(ok.content)["value"] == 6 and not ep.broken


def test_no_timeout_runs_inline(counter_env):
    ep = counter_env(call_timeout_s=None).new_episode()
    assert ep.limits.call_timeout_s is None
    assert ep.execute([ToolCall("add", {"amount": 1})])[0].content.startswith('{"value": 1')


def test_record_replay_environment():
    spec = spec_from_mapping({
        "name": "weather",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    })
    env = ToolEnv(spec)
    task = {"initial_state": {"weather": [
        {"name": "get_weather", "arguments": {"city": "Oslo"}, "content": "rain"},
        {"name": "get_weather", "content": {"default": True}},
    ]}}
    ep = env.new_episode(task)
    oslo, other = ep.execute([ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_weather", {"city": "Rome"})])
    assert (oslo.content, other.content) == ("rain", '{"default": true}')
    empty = env.new_episode().execute([ToolCall("get_weather", {"city": "Oslo"})])[0]
    assert empty.error and "no recorded output" in empty.content
    assert env.new_episode(task).state() == {}
    with pytest.raises(ValueError, match="record/replay"):
        env.new_episode({"initial_state": {"weather": {"oops": 1}}})


def test_composition_rejects_duplicate_tool_names(counter_env):
    spec = counter_env().specs[0]
    with pytest.raises(ValueError, match="unique tool names"):
        ToolEnv([spec, spec])
    merged = ToolEnv([spec], limits=Limits(max_calls_per_turn=1))
    assert merged.new_episode().limits.max_calls_per_turn == 1


def test_public_state_handles_cycles_sets_dates():
    class Node:
        def __init__(self, name, parent=None):
            self.name, self.parent, self.children, self._private = name, parent, {}, 1

    root = Node("/")
    root.children["a"] = Node("a", root)
    snap = public_state({"root": root, "tags": {"b", "a"}, "when": datetime.date(2024, 1, 2), "t": (1, 2)})
    assert snap == {"root": {"name": "/", "parent": None, "children": {"a": {"name": "a", "children": {}}}}, "tags": ["a", "b"], "when": "2024-01-02", "t": [1, 2]}
    json.dumps(snap)


def test_hostile_arguments_never_crash(counter_env):
    deep: list = []
    cur = deep
    for _ in range(20000):  # far deeper than the recursion limit
        cur.append([])
        cur = cur[0]
    for checking in ("coerce", "off"):
        ep = counter_env(checking).new_episode()
        r = ep.execute([ToolCall("add", {"amount": 1, "note": deep}), ToolCall(None, {}), ToolCall("add", {"amount": 1})])  # type: ignore[arg-type]
        assert [x.error for x in r] == [True, True, False]


def test_timeout_inside_a_message_keeps_earlier_results(counter_env, isolation):
    ep = counter_env().new_episode()
    first, hung, after = ep.execute([ToolCall("add", {"amount": 2}), ToolCall("hang", {}), ToolCall("add", {"amount": 5})])
    assert not first.error and json.loads(first.content)["value"] == 2
    assert hung.error and "did not finish within 0.5 s" in hung.content
    assert after.error
    assert len(ep.history) == 3
    if isolation == "process":  # the earlier call counts, the stopped one does not, the rest never ran
        assert "not executed" in after.content and ep.state()["Counter"]["value"] == 2
        assert not ep.execute([ToolCall("add", {"amount": 1})])[0].error
    else:
        assert "timed out" in after.content
