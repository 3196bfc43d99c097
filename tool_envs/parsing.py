# Over 400 lines on purpose: the three call formats share one set of safety limits and one error type; each format's parser and formatter sit next to each other.
"""Safe parsing of tool calls out of model text, and the inverse formatting.

Model output is untrusted. Nothing here evaluates it: JSON goes through ``json.loads`` and Python-style
calls through ``ast.parse(mode="eval")`` plus ``ast.literal_eval`` on each argument node. Work is bounded
(input length, nesting depth, number of calls) and every failure -- including ``RecursionError`` and the
parser's ``MemoryError`` on pathological input -- becomes a :class:`ToolCallParseError` whose message is
written to be shown to the model as a tool-role error.

Formats (``fmt``):

``"hermes"``
    Qwen / Hermes style, one call per block::

        <tool_call>
        {"name": "get_weather", "arguments": {"city": "Paris"}}
        </tool_call>

    Several blocks give several calls. ``"parameters"`` is accepted as an alias of ``"arguments"`` (models
    trained on ToolRL data emit it; giving both is an error). ``arguments`` may also arrive as a JSON
    *string* holding an object (OpenAI wire style); it is decoded. Missing arguments mean ``{}``.

``"toolrl"``
    ToolRL style: one ``<tool_call>`` block holding one JSON object per line, key ``"parameters"``
    (``"arguments"`` accepted as an alias). Blank lines are skipped; several blocks are concatenated.

``"python"``
    BFCL prompting style: ``[f(a=1, b='x'), g()]`` or a bare ``f(a=1)``; dotted names such as
    ``math.factorial`` are names. Arguments must be literals (``ast.literal_eval``); nested calls,
    ``**kwargs``, attribute access on values, lambdas etc. are refused. Tuples become lists; sets, bytes and
    complex numbers are refused (arguments must be JSON-like). Positional arguments (BFCL ground truth has
    ``sort('final_report.pdf')``) are named when ``signatures`` knows the function, and otherwise kept, in
    order, under the reserved key :data:`POSITIONAL_ARGS_KEY` (``"__args__"``) for the executor to bind
    (see :func:`bind_positional`). Text that does not *look like* a call (does not start with ``[``, ``(`` or
    ``name(``) is a plain answer and parses to ``[]``, as in BFCL where an undecodable step ends the turn.

For every format, a leading reasoning section ``<think>…</think>`` is ignored (see
:func:`strip_thinking`), and ``[]`` means "no call" (the model answered in prose).
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tool_envs.types import ToolCall

__all__ = [
    "FORMATS",
    "POSITIONAL_ARGS_KEY",
    "ParseLimits",
    "ToolCallParseError",
    "bind_positional",
    "format_tool_calls",
    "parse_tool_calls",
    "signatures_from_tools",
    "strip_thinking",
]

FORMATS = ("hermes", "toolrl", "python")

#: Reserved argument key holding positional arguments of a "python"-format call that ``signatures`` could
#: not name. A leading double underscore cannot clash with a JSON-Schema parameter of any sane tool.
POSITIONAL_ARGS_KEY = "__args__"

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PY_CALL_START = re.compile(r"^\s*(?:[\[(]|[A-Za-z_][A-Za-z0-9_.]*\s*\()")
_FENCE_RE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


class ToolCallParseError(ValueError):
    """The text tried to call tools but the calls are malformed; ``str(err)`` is meant for the model."""


@dataclass(frozen=True)
class ParseLimits:
    """Bounds that keep parsing cheap on hostile input.

    Attributes:
        max_chars: Longest text parsed at all. Real responses are a few thousand tokens (~4 chars each);
            100k chars leaves room for long JSON arguments while a 10 MB string is refused in O(1).
            Raising it makes worst-case parse time grow linearly.
        max_depth: Deepest nesting of lists/objects inside arguments. Tool arguments are rarely deeper
            than 4; 32 rejects bracket bombs well before any recursion limit.
        max_calls: Most calls accepted from one response. Protects the executor from a response that
            emits thousands of calls; lower it to match an environment's per-turn limit.
        max_name_chars: Longest tool name accepted.
    """

    max_chars: int = 100_000
    max_depth: int = 32
    max_calls: int = 64
    max_name_chars: int = 256


DEFAULT_LIMITS = ParseLimits()


# --------------------------------------------------------------------------------------------- helpers
def _as_text(text: Any, limits: ParseLimits) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        if len(text) > 4 * limits.max_chars:
            raise ToolCallParseError(f"Tool call parse error: the response is too long (> {limits.max_chars} characters).")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ToolCallParseError(f"Tool call parse error: the response is not valid UTF-8 ({e.reason} at byte {e.start}).") from None
    if not isinstance(text, str):
        raise ToolCallParseError(f"Tool call parse error: expected text, got {type(text).__name__}.")
    if len(text) > limits.max_chars:
        raise ToolCallParseError(
            f"Tool call parse error: the response is too long ({len(text)} > {limits.max_chars} characters)."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ToolCallParseError(
            f"Tool call parse error: the response contains invalid characters ({e.reason} at position {e.start})."
        ) from None
    return text


def strip_thinking(text: str) -> str:
    """Drop the leading reasoning section, so calls the model only *thought about* are not run.

    * Text starting with ``<think>``: everything through the first ``</think>`` is dropped (all of it
      when ``</think>`` never comes, e.g. a length cut mid-thought).
    * A ``</think>`` without an opener (Qwen3 templates put ``<think>`` in the prompt) drops everything
      before it, unless that prefix already holds a call (``<tool_call>`` or a Python-style call start),
      in which case the tag is part of an argument.

    Only the leading section is touched: ``<think>`` inside an argument string stays intact.
    """
    stripped = text.lstrip()
    if stripped.startswith(_THINK_OPEN):
        j = stripped.find(_THINK_CLOSE, len(_THINK_OPEN))
        return "" if j < 0 else stripped[j + len(_THINK_CLOSE) :]
    j = text.find(_THINK_CLOSE)
    if j >= 0:
        prefix = text[:j]
        if _OPEN not in prefix and not _PY_CALL_START.match(prefix):
            return text[j + len(_THINK_CLOSE) :]
    return text


def _check_value(value: Any, where: str, limits: ParseLimits) -> Any:
    """Iteratively check (and normalise) a decoded argument value: JSON-like types, depth, valid strings.

    Returns the value with tuples turned into lists. Iterative so that depth itself cannot overflow.
    """

    def bad(msg: str) -> ToolCallParseError:
        return ToolCallParseError(f"Tool call parse error: {where}: {msg}")

    def check_str(s: str) -> None:
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise bad("a string contains invalid characters (lone surrogates).") from None

    root: list[Any] = [value]
    # stack of (container, key, value, depth)
    stack: list[tuple[Any, Any, Any, int]] = [(root, 0, value, 0)]
    while stack:
        parent, key, v, depth = stack.pop()
        if depth > limits.max_depth:
            raise bad(f"arguments are nested too deeply (more than {limits.max_depth} levels).")
        if v is None or isinstance(v, bool) or isinstance(v, int):
            continue
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise bad("NaN and infinite numbers are not allowed in arguments.")
            continue
        if isinstance(v, str):
            check_str(v)
            continue
        if isinstance(v, (list, tuple)):
            new = list(v)
            parent[key] = new
            for i, item in enumerate(new):
                stack.append((new, i, item, depth + 1))
            continue
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str):
                    raise bad(f"object keys must be strings, got {type(k).__name__} {k!r:.40}.")
                check_str(k)
            new = dict(v)
            parent[key] = new
            for k, item in new.items():
                stack.append((new, k, item, depth + 1))
            continue
        raise bad(f"values of type {type(v).__name__} are not allowed; use strings, numbers, booleans, null, lists and objects.")
    return root[0]


def _check_name(name: Any, where: str, limits: ParseLimits, dotted_only: bool = False) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ToolCallParseError(f'Tool call parse error: {where}: "name" must be a non-empty string.')
    name = name.strip()
    if len(name) > limits.max_name_chars:
        raise ToolCallParseError(f"Tool call parse error: {where}: the tool name is too long.")
    if dotted_only and not _NAME_RE.match(name):
        raise ToolCallParseError(f"Tool call parse error: {where}: {name[:60]!r} is not a valid function name.")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ToolCallParseError(f"Tool call parse error: {where}: the tool name contains invalid characters.") from None
    return name


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _loads(s: str, where: str, limits: ParseLimits) -> Any:
    try:
        return json.loads(s, parse_constant=_reject_constant)
    except RecursionError:
        raise ToolCallParseError(
            f"Tool call parse error: {where}: JSON nested too deeply (more than {limits.max_depth} levels)."
        ) from None
    except MemoryError:
        raise ToolCallParseError(f"Tool call parse error: {where}: JSON too large.") from None
    except json.JSONDecodeError as e:
        raise ToolCallParseError(f"Tool call parse error: {where} is not valid JSON ({e.msg} at character {e.pos}).") from None
    except ValueError as e:  # NaN/Infinity, integers with too many digits
        raise ToolCallParseError(f"Tool call parse error: {where} is not valid JSON ({str(e)[:120]}).") from None


def _call_from_obj(obj: Any, where: str, limits: ParseLimits, primary: str, alias: str) -> ToolCall:
    if not isinstance(obj, dict):
        raise ToolCallParseError(
            f'Tool call parse error: {where} must be a JSON object {{"name": ..., "{primary}": {{...}}}}, '
            f"got {type(obj).__name__}."
        )
    name = _check_name(obj.get("name"), where, limits)
    if primary in obj and alias in obj:
        raise ToolCallParseError(f'Tool call parse error: {where}: give "{primary}" or "{alias}", not both.')
    args = obj.get(primary, obj.get(alias, {}))
    if args is None:
        args = {}
    if isinstance(args, str):  # OpenAI wire style: arguments as a JSON string
        args = _loads(args, f'{where} "{primary}" string', limits) if args.strip() else {}
    if not isinstance(args, dict):
        raise ToolCallParseError(
            f'Tool call parse error: {where}: "{primary}" must be a JSON object mapping parameter names to values, '
            f"got {type(args).__name__}."
        )
    args = _check_value(args, f"{where} ({name})", limits)
    return ToolCall(name=name, arguments=args)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WS = re.compile(r"\s*")


def _json_blocks(text: str, limits: ParseLimits, fmt: str) -> list[tuple[Any, str]]:
    """The JSON values inside the ``<tool_call>…</tool_call>`` blocks, in order, each with a location.

    Values are read with ``raw_decode`` rather than by cutting at the closing tag, so an argument string
    that itself contains ``</tool_call>`` is still read correctly. Malformed tags raise.
    """
    out: list[tuple[Any, str]] = []
    pos, n = 0, 0
    while True:
        i = text.find(_OPEN, pos)
        stray = text.find(_CLOSE, pos)
        if stray >= 0 and (i < 0 or stray < i):
            raise ToolCallParseError(f"Tool call parse error: found {_CLOSE} without a matching {_OPEN}.")
        if i < 0:
            return out
        n += 1
        p = i + len(_OPEN)
        m = 0
        while True:
            p = _WS.match(text, p).end()
            if text.startswith(_CLOSE, p):
                p += len(_CLOSE)
                break
            if p >= len(text):
                raise ToolCallParseError(
                    f"Tool call parse error: <tool_call> block {n} is not closed; end each call with {_CLOSE}."
                )
            if text.startswith(_OPEN, p):
                raise ToolCallParseError(f"Tool call parse error: {_OPEN} blocks cannot be nested; close each with {_CLOSE}.")
            m += 1
            where = f"<tool_call> block {n}" if fmt == "hermes" else f"call {m} of <tool_call> block {n}"
            if fmt == "hermes" and m > 1:
                raise ToolCallParseError(
                    f"Tool call parse error: {where} holds more than one JSON object; put each call in its own "
                    f"{_OPEN}…{_CLOSE} block."
                )
            try:
                obj, p = _DECODER.raw_decode(text, p)
            except RecursionError:
                raise ToolCallParseError(
                    f"Tool call parse error: {where}: JSON nested too deeply (more than {limits.max_depth} levels)."
                ) from None
            except json.JSONDecodeError as e:
                if _CLOSE not in text[p:]:
                    raise ToolCallParseError(
                        f"Tool call parse error: <tool_call> block {n} is not closed; end each call with {_CLOSE}."
                    ) from None
                raise ToolCallParseError(
                    f"Tool call parse error: {where} is not valid JSON ({e.msg} at character {e.pos - i - len(_OPEN)})."
                ) from None
            except ValueError as e:  # NaN/Infinity, integers with too many digits
                raise ToolCallParseError(f"Tool call parse error: {where} is not valid JSON ({str(e)[:120]}).") from None
            out.append((obj, where))
            if len(out) > limits.max_calls:
                raise ToolCallParseError(f"Tool call parse error: too many tool calls (more than {limits.max_calls}).")
        if m == 0:
            raise ToolCallParseError(f"Tool call parse error: <tool_call> block {n} is empty.")
        pos = p


# --------------------------------------------------------------------------------------------- formats
def _parse_hermes(text: str, limits: ParseLimits) -> list[ToolCall]:
    return [_call_from_obj(obj, where, limits, "arguments", "parameters") for obj, where in _json_blocks(text, limits, "hermes")]


def _parse_toolrl(text: str, limits: ParseLimits) -> list[ToolCall]:
    return [_call_from_obj(obj, where, limits, "parameters", "arguments") for obj, where in _json_blocks(text, limits, "toolrl")]


def _dotted_name(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.AST, where: str, limits: ParseLimits) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        if any(isinstance(n, ast.Call) for n in ast.walk(node)):
            raise ToolCallParseError(
                f"Tool call parse error: {where}: arguments must be literal values; nested calls are not allowed."
            ) from None
        raise ToolCallParseError(
            f"Tool call parse error: {where}: arguments must be literal values (strings, numbers, True/False/None, "
            "lists, dicts); expressions and variables are not allowed."
        ) from None
    except (RecursionError, MemoryError):
        raise ToolCallParseError(f"Tool call parse error: {where}: argument nested too deeply.") from None
    return _check_value(value, where, limits)


def _unwrap_python(text: str) -> str:
    s = text.strip()
    m = _FENCE_RE.match(s)
    if m:
        s = m.group(1).strip()
    return s


def _parse_python(text: str, limits: ParseLimits, signatures: Mapping[str, Sequence[str]] | None) -> list[ToolCall]:
    src = _unwrap_python(text)
    if not src or not _PY_CALL_START.match(src):
        return []
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError) as e:  # includes "too many nested parentheses"
        msg = getattr(e, "msg", None) or str(e)
        raise ToolCallParseError(
            f"Tool call parse error: not a valid call list ({msg[:120]}); write calls as [func(arg=value), ...]."
        ) from None
    except (RecursionError, MemoryError):
        raise ToolCallParseError("Tool call parse error: the call list is nested too deeply.") from None
    body = tree.body
    if isinstance(body, (ast.List, ast.Tuple)):
        nodes = list(body.elts)
    elif isinstance(body, ast.Call):
        nodes = [body]
    else:
        raise ToolCallParseError("Tool call parse error: expected a list of calls like [func(arg=value), ...].")
    if len(nodes) > limits.max_calls:
        raise ToolCallParseError(f"Tool call parse error: too many tool calls (more than {limits.max_calls}).")
    calls = []
    for n, node in enumerate(nodes, 1):
        where = f"call {n}"
        if not isinstance(node, ast.Call):
            raise ToolCallParseError(f"Tool call parse error: {where} is not a function call; write func(arg=value).")
        name = _dotted_name(node.func)
        if name is None:
            raise ToolCallParseError(
                f"Tool call parse error: {where}: the function must be a plain or dotted name like func or math.factorial."
            )
        name = _check_name(name, where, limits, dotted_only=True)
        where = f"call {n} ({name})"
        args: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ToolCallParseError(f"Tool call parse error: {where}: **kwargs is not allowed; name every argument.")
            if kw.arg in args:
                raise ToolCallParseError(f"Tool call parse error: {where}: argument {kw.arg!r} given twice.")
            args[kw.arg] = _literal(kw.value, f"{where} argument {kw.arg!r}", limits)
        positional = []
        for i, a in enumerate(node.args):
            if isinstance(a, ast.Starred):
                raise ToolCallParseError(f"Tool call parse error: {where}: *args is not allowed.")
            positional.append(_literal(a, f"{where} positional argument {i + 1}", limits))
        call = ToolCall(name=name, arguments=args)
        if positional:
            call = ToolCall(name=name, arguments={**args, POSITIONAL_ARGS_KEY: positional})
            if signatures is not None and name in signatures:
                call = bind_positional(call, signatures[name])
        calls.append(call)
    return calls


# --------------------------------------------------------------------------------------------- public API
def parse_tool_calls(
    text: str | bytes,
    fmt: str = "hermes",
    *,
    signatures: Mapping[str, Sequence[str]] | None = None,
    limits: ParseLimits | None = None,
) -> list[ToolCall]:
    """Parse the tool calls in one assistant response.

    Args:
        text: The generated text (``bytes`` must be valid UTF-8).
        fmt: ``"hermes"``, ``"toolrl"`` or ``"python"`` (see the module docstring).
        signatures: For ``"python"`` only: ``{function name: [parameter names in order]}`` used to name
            positional arguments; see :func:`signatures_from_tools`. Unknown functions keep positional
            arguments under :data:`POSITIONAL_ARGS_KEY`.
        limits: Work bounds; :class:`ParseLimits` defaults when ``None``.

    Returns:
        The calls in order; ``[]`` when the response makes no call.

    Raises:
        ToolCallParseError: the response tries to call tools but is malformed, unsafe or too large. The
            message is meant to be sent back to the model.
        ValueError: ``fmt`` is unknown (a configuration error, not the model's).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown tool-call format {fmt!r}; choose one of {', '.join(FORMATS)} (RunnerConfig.tool_format)")
    limits = limits or DEFAULT_LIMITS
    text = strip_thinking(_as_text(text, limits))
    try:
        if fmt == "hermes":
            return _parse_hermes(text, limits)
        if fmt == "toolrl":
            return _parse_toolrl(text, limits)
        return _parse_python(text, limits, signatures)
    except (RecursionError, MemoryError):  # last line of defence: nothing escapes as a crash
        raise ToolCallParseError("Tool call parse error: the response is nested too deeply or too large.") from None


def bind_positional(call: ToolCall, param_names: Sequence[str]) -> ToolCall:
    """Name the positional arguments kept under :data:`POSITIONAL_ARGS_KEY` using ``param_names`` (in order).

    Raises ToolCallParseError (model-facing) on too many positional arguments or a name given twice.
    """
    args = dict(call.arguments)
    positional = args.pop(POSITIONAL_ARGS_KEY, None)
    if not positional:
        return ToolCall(call.name, args)
    names = list(param_names)
    if len(positional) > len(names):
        raise ToolCallParseError(
            f"Tool call parse error: {call.name} takes at most {len(names)} positional arguments, got {len(positional)}."
        )
    for pname, value in zip(names, positional):
        if pname in args:
            raise ToolCallParseError(f"Tool call parse error: {call.name}: argument {pname!r} given twice.")
        args[pname] = value
    return ToolCall(call.name, args)


def signatures_from_tools(tools: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{name: [parameter names]}`` from OpenAI function schemas (or bare function dicts).

    The order is the order of ``parameters.properties``, which is the Python signature order for schemas
    generated from code (BFCL's function docs follow it).
    """
    out: dict[str, list[str]] = {}
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else {}
        name = fn.get("name")
        if isinstance(name, str):
            props = (fn.get("parameters") or {}).get("properties") or {}
            out[name] = list(props)
    return out


def _py_literal(value: Any) -> str:
    # repr() of JSON-like values is a valid Python literal (True/False/None, quoted strings).
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("NaN/inf cannot be formatted as a Python literal")
    return repr(value)


def format_tool_calls(calls: Iterable[ToolCall | Mapping[str, Any]], fmt: str = "hermes") -> str:
    """Render calls as a model would write them in ``fmt``; ``parse_tool_calls`` inverts it.

    ``hermes`` matches the Qwen chat template byte for byte (one ``<tool_call>`` block per call, joined by a
    newline); ``toolrl`` is one block with one JSON line per call; ``python`` is ``[f(a=1), g()]``. No calls
    renders as ``""`` (hermes, toolrl) or ``"[]"`` (python).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown tool-call format {fmt!r}; choose one of {', '.join(FORMATS)}")
    norm: list[ToolCall] = []
    for c in calls:
        if isinstance(c, ToolCall):
            norm.append(c)
        else:
            norm.append(ToolCall(c["name"], dict(c.get("arguments", c.get("parameters", {})) or {})))
    if fmt == "hermes":
        return "\n".join(
            f'{_OPEN}\n{{"name": {json.dumps(c.name, ensure_ascii=False)}, "arguments": '
            f"{json.dumps(c.arguments, ensure_ascii=False)}}}\n{_CLOSE}"
            for c in norm
        )
    if fmt == "toolrl":
        if not norm:
            return ""
        lines = [json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False) for c in norm]
        return _OPEN + "\n" + "\n".join(lines) + "\n" + _CLOSE
    parts = []
    for c in norm:
        if not _NAME_RE.match(c.name):
            raise ValueError(f"{c.name!r} cannot be written as a Python call name")
        args = dict(c.arguments)
        items = [_py_literal(v) for v in args.pop(POSITIONAL_ARGS_KEY, None) or []]
        for k in args:
            if not k.isidentifier():
                raise ValueError(f"argument name {k!r} of {c.name} cannot be written as a Python keyword")
        items += [f"{k}={_py_literal(v)}" for k, v in args.items()]
        parts.append(f"{c.name}({', '.join(items)})")
    return "[" + ", ".join(parts) + "]"
