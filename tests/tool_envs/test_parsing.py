"""Safe tool-call parsing: the three formats, the inverse, and hostile input."""
from __future__ import annotations

import json
import keyword
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tool_envs.parsing import (
    POSITIONAL_ARGS_KEY,
    ParseLimits,
    ToolCallParseError,
    bind_positional,
    format_tool_calls,
    parse_tool_calls,
    signatures_from_tools,
    strip_thinking,
)
from tool_envs.types import ToolCall


# ----------------------------------------------------------------------------------------------- hermes
def test_hermes_several_blocks_with_prose_and_thinking():
    text = (
        "<think>maybe <tool_call>{\"name\": \"ignored\"}</tool_call></think>\nLet me check.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>\n'
        '<tool_call>\n{"name": "ls", "arguments": {}}\n</tool_call>'
    )
    assert parse_tool_calls(text, "hermes") == [
        ToolCall("get_weather", {"city": "Paris", "days": 3}),
        ToolCall("ls", {}),
    ]


def test_tags_inside_argument_strings_do_not_cut_the_call():
    args = {"code": "print('</tool_call>')", "note": "<tool_call> x"}
    for fmt in ("hermes", "toolrl"):
        assert parse_tool_calls(format_tool_calls([ToolCall("run", args)], fmt), fmt) == [ToolCall("run", args)]


def test_hermes_no_call_is_empty_list():
    assert parse_tool_calls("The weather in Paris is sunny.", "hermes") == []
    assert parse_tool_calls("", "hermes") == []


def test_hermes_arguments_as_json_string_and_parameters_alias():
    text = '<tool_call>{"name": "f", "arguments": "{\\"a\\": [1, 2]}"}</tool_call>'
    assert parse_tool_calls(text, "hermes") == [ToolCall("f", {"a": [1, 2]})]
    text = '<tool_call>{"name": "f", "parameters": {"a": 1}}</tool_call>'
    assert parse_tool_calls(text, "hermes") == [ToolCall("f", {"a": 1})]
    text = '<tool_call>{"name": "f"}</tool_call>'
    assert parse_tool_calls(text, "hermes") == [ToolCall("f", {})]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('<tool_call>{"name": "f", "arguments": {"a": 1}', "not closed"),
        ('{"name": "f"}</tool_call>', "without a matching"),
        ("<tool_call>{name: f}</tool_call>", "not valid JSON"),
        ('<tool_call>["f", {}]</tool_call>', "must be a JSON object"),
        ('<tool_call>{"arguments": {}}</tool_call>', '"name" must be a non-empty string'),
        ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "must be a JSON object mapping"),
        ('<tool_call>{"name": "f", "arguments": {}, "parameters": {}}</tool_call>', "not both"),
        ('<tool_call>{"name": "f", "arguments": {"x": NaN}}</tool_call>', "NaN"),
        ("<tool_call>   </tool_call>", "empty"),
        ('<tool_call><tool_call>{"name": "f"}</tool_call>', "nested"),
        ('<tool_call>{"name": "f"} {"name": "g"}</tool_call>', "its own"),
    ],
)
def test_hermes_malformed_gives_model_facing_error(text, fragment):
    with pytest.raises(ToolCallParseError, match="Tool call parse error") as err:
        parse_tool_calls(text, "hermes")
    assert fragment in str(err.value)


# ----------------------------------------------------------------------------------------------- toolrl
def test_toolrl_one_json_per_line():
    text = (
        "<think>two calls</think>\n<tool_call>\n"
        '{"name": "a", "parameters": {"x": 1}}\n\n{"name": "b", "parameters": {"y": "z"}}\n'
        "</tool_call>\n<response>done</response>"
    )
    assert parse_tool_calls(text, "toolrl") == [ToolCall("a", {"x": 1}), ToolCall("b", {"y": "z"})]
    assert parse_tool_calls("<think>x</think>\n<response>hi</response>", "toolrl") == []


def test_toolrl_bad_line_names_the_line():
    text = '<tool_call>\n{"name": "a", "parameters": {}}\n{"name": "b", \n</tool_call>'
    with pytest.raises(ToolCallParseError, match="call 2 of <tool_call> block 1"):
        parse_tool_calls(text, "toolrl")


# ----------------------------------------------------------------------------------------------- python
def test_python_list_bare_tuple_and_dotted_names():
    assert parse_tool_calls("[f(a=1, b='x'), g()]", "python") == [ToolCall("f", {"a": 1, "b": "x"}), ToolCall("g", {})]
    assert parse_tool_calls("math.factorial(number=5)", "python") == [ToolCall("math.factorial", {"number": 5})]
    assert parse_tool_calls("(f(a=(1, 2)), g(b=None))", "python") == [ToolCall("f", {"a": [1, 2]}), ToolCall("g", {"b": None})]
    assert parse_tool_calls("```python\n[f(d={'k': [True, 1.5]})]\n```", "python") == [ToolCall("f", {"d": {"k": [True, 1.5]}})]
    assert parse_tool_calls("<think>hmm</think>\n[cd(folder='doc')]", "python") == [ToolCall("cd", {"folder": "doc"})]
    assert parse_tool_calls("[]", "python") == []


def test_python_prose_is_no_call():
    assert parse_tool_calls("I have moved the file for you.", "python") == []
    assert parse_tool_calls("   ", "python") == []


def test_python_positional_arguments_kept_or_named():
    calls = parse_tool_calls("[sort('final_report.pdf'), mv('a', destination='b')]", "python")
    assert calls == [
        ToolCall("sort", {POSITIONAL_ARGS_KEY: ["final_report.pdf"]}),
        ToolCall("mv", {"destination": "b", POSITIONAL_ARGS_KEY: ["a"]}),
    ]
    tools = [
        {"type": "function", "function": {"name": "sort", "parameters": {"type": "object", "properties": {"file_name": {}}}}},
        {"name": "mv", "parameters": {"type": "object", "properties": {"source": {}, "destination": {}}}},
    ]
    sigs = signatures_from_tools(tools)
    assert sigs == {"sort": ["file_name"], "mv": ["source", "destination"]}
    named = parse_tool_calls("[sort('final_report.pdf'), mv('a', destination='b')]", "python", signatures=sigs)
    assert named == [ToolCall("sort", {"file_name": "final_report.pdf"}), ToolCall("mv", {"source": "a", "destination": "b"})]
    with pytest.raises(ToolCallParseError, match="given twice"):
        bind_positional(ToolCall("mv", {"source": "x", POSITIONAL_ARGS_KEY: ["a"]}), ["source", "destination"])
    with pytest.raises(ToolCallParseError, match="at most 1 positional"):
        bind_positional(ToolCall("sort", {POSITIONAL_ARGS_KEY: ["a", "b"]}), ["file_name"])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[__import__('os').system('touch x')]", "plain or dotted name"),
        ("[cd(folder=str(__import__('os').getpid()) + '')]", "nested calls are not allowed"),
        ("f(x=g())", "nested calls are not allowed"),
        ("f(x=lambda: 1)", "literal values"),
        ("f(x=y)", "literal values"),
        ("f(x=1+2)", "literal values"),
        ("f(**{'a': 1})", "**kwargs"),
        ("f(*[1])", "*args"),
        ("f(a=1, a=2)", "given twice"),
        ("[f(a={1, 2})]", "type set"),
        ("[f(a=b'x')]", "type bytes"),
        ("[f(a={1: 'x'})]", "keys must be strings"),
        ("[f(a=1), 3]", "not a function call"),
        ("[f(a=1]", "not a valid call list"),
        ("f()()", "plain or dotted name"),
        ("f(a=1" + "0" * 5000 + ")", "not a valid call list"),
    ],
)
def test_python_refuses_code(text, fragment):
    with pytest.raises(ToolCallParseError) as err:
        parse_tool_calls(text, "python")
    assert fragment in str(err.value)


def test_python_hostile_input_never_executes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in (
        "[__import__('os').system('touch pwned')]",
        "[open(file='pwned', mode='w')]",  # parses as a *name* only; nothing is called
        "[f(a=__import__('os').system('touch pwned'))]",
    ):
        try:
            parse_tool_calls(text, "python")
        except ToolCallParseError:
            pass
    assert not (tmp_path / "pwned").exists()
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------------- hostile
HOSTILE = [
    "[" * 100_000,
    "f(a=" + "[" * 100_000 + "]" * 100_000 + ")",
    "f(a=" + "-" * 50_000 + "1)",
    "f(a=1" + "+1" * 30_000 + ")",
    "x" * (10 * 1024 * 1024),
    "<tool_call>" + "[" * 90_000 + "</tool_call>",
    '<tool_call>{"name": "f", "arguments": ' + "[" * 50_000 + "]" * 50_000 + "}</tool_call>",
    "<tool_call>\n" + '{"name": "f", "parameters": ' + '{"a":' * 40_000 + "1" + "}" * 40_001 + "\n</tool_call>",
    "\ud800<tool_call>",
    '<tool_call>{"name": "f", "arguments": {"a": "\\udc80"}}</tool_call>',
    "<tool_call>" + '{"name": "f"}' + "</tool_call>" * 2,
]


@pytest.mark.parametrize("fmt", ["hermes", "toolrl", "python"])
@pytest.mark.parametrize("idx", range(len(HOSTILE)))
def test_hostile_inputs_are_errors_or_empty_never_crashes(fmt, idx):
    try:
        out = parse_tool_calls(HOSTILE[idx], fmt)
    except ToolCallParseError as e:
        assert str(e).startswith("Tool call parse error")
    else:
        assert out == []  # e.g. a tag-less bracket bomb is just prose in the hermes format


def test_huge_and_deep_inputs_are_refused():
    with pytest.raises(ToolCallParseError, match="too long"):
        parse_tool_calls("x" * (10 * 1024 * 1024), "hermes")
    with pytest.raises(ToolCallParseError, match="nested"):
        parse_tool_calls("[" * 100_000, "python")
    deep = '<tool_call>{"name": "f", "arguments": {"a": ' + "[" * 40 + "]" * 40 + "}}</tool_call>"
    with pytest.raises(ToolCallParseError, match="nested too deeply"):
        parse_tool_calls(deep, "hermes")
    ok = '<tool_call>{"name": "f", "arguments": {"a": ' + "[" * 40 + "]" * 40 + "}}</tool_call>"
    assert parse_tool_calls(ok, "hermes", limits=ParseLimits(max_depth=64))[0].name == "f"


def test_invalid_utf8_bytes_and_surrogates():
    with pytest.raises(ToolCallParseError, match="not valid UTF-8"):
        parse_tool_calls(b'<tool_call>{"name": "f\xff"}</tool_call>', "hermes")
    assert parse_tool_calls('<tool_call>{"name": "f"}</tool_call>'.encode(), "hermes") == [ToolCall("f", {})]
    with pytest.raises(ToolCallParseError, match="invalid characters"):
        parse_tool_calls('<tool_call>{"name": "f\ud800"}</tool_call>', "hermes")
    with pytest.raises(ToolCallParseError, match="lone surrogates"):
        parse_tool_calls('<tool_call>{"name": "f", "arguments": {"a": "\\ud800"}}</tool_call>', "hermes")


def test_too_many_calls():
    text = "\n".join('<tool_call>{"name": "f"}</tool_call>' for _ in range(65))
    with pytest.raises(ToolCallParseError, match="too many tool calls"):
        parse_tool_calls(text, "hermes")
    assert len(parse_tool_calls(text, "hermes", limits=ParseLimits(max_calls=100))) == 65
    with pytest.raises(ToolCallParseError, match="too many tool calls"):
        parse_tool_calls("[" + ", ".join(["f()"] * 65) + "]", "python")


def test_unknown_format_is_a_config_error():
    with pytest.raises(ValueError, match="unknown tool-call format") as err:
        parse_tool_calls("x", "xml")
    assert not isinstance(err.value, ToolCallParseError)


def test_strip_thinking_variants():
    assert strip_thinking("  <think>b</think>c<think>d</think>e") == "c<think>d</think>e"
    assert strip_thinking("<think>never closed <tool_call>") == ""
    assert strip_thinking("reasoning without opener</think>\nanswer") == "\nanswer"
    keep = '<tool_call>{"name": "f", "arguments": {"a": "</think>"}}</tool_call>'
    assert strip_thinking(keep) == keep
    assert strip_thinking("[f(a='</think>')]") == "[f(a='</think>')]"


# ----------------------------------------------------------------------------------------------- inverse
def test_format_examples():
    calls = [ToolCall("f", {"a": 1, "b": "x"}), ToolCall("g", {})]
    assert format_tool_calls(calls, "hermes") == (
        '<tool_call>\n{"name": "f", "arguments": {"a": 1, "b": "x"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>'
    )
    assert format_tool_calls(calls, "toolrl") == (
        '<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": "x"}}\n{"name": "g", "parameters": {}}\n</tool_call>'
    )
    assert format_tool_calls(calls, "python") == "[f(a=1, b='x'), g()]"
    assert format_tool_calls([ToolCall("sort", {POSITIONAL_ARGS_KEY: ["r.pdf"]})], "python") == "[sort('r.pdf')]"
    assert format_tool_calls([{"name": "f", "parameters": {"a": 1}}], "python") == "[f(a=1)]"
    assert format_tool_calls([], "hermes") == "" and format_tool_calls([], "python") == "[]"


def test_hermes_format_matches_qwen_template(qwen_tokenizer):
    args = {"path": "dir/ü", "n": [1, 2.5, None, True]}
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": args}}]},
    ]
    rendered = qwen_tokenizer.apply_chat_template(msgs, tokenize=False)
    assert format_tool_calls([ToolCall("f", args)], "hermes") in rendered


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,6})?", fullmatch=True).filter(
    lambda s: not any(keyword.iskeyword(part) for part in s.split(".")))
# Python keywords cannot appear as names or dotted-name parts in the python format.
kw_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))
calls_st = st.lists(
    st.builds(ToolCall, identifiers, st.dictionaries(kw_names, json_values, max_size=4)), max_size=5
)


@settings(max_examples=150, deadline=None)
@given(calls_st, st.sampled_from(["hermes", "toolrl", "python"]))
def test_roundtrip_property(calls, fmt):
    text = format_tool_calls(calls, fmt)
    back = parse_tool_calls(text, fmt)
    # JSON and Python literals both preserve the values exactly (ints stay ints, floats round-trip by repr).
    assert json.dumps([c.to_dict() for c in back], sort_keys=True) == json.dumps([c.to_dict() for c in calls], sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["hermes", "toolrl", "python"]))
def test_arbitrary_text_never_crashes(text, fmt):
    try:
        out = parse_tool_calls(text, fmt)
    except ToolCallParseError:
        return
    assert all(isinstance(c, ToolCall) and isinstance(c.arguments, dict) for c in out)
