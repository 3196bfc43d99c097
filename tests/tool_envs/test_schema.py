"""Schema files: every shipped file validates; each kind of bad file gives a clear error."""
from __future__ import annotations

import copy
import json
import pathlib

import pytest
import yaml

from tool_envs import SchemaError, load_spec, spec_from_mapping
from tool_envs.registry import BUILTIN_DIR
from tool_envs.bfcl_schema import BFCL_TYPE_MAP, bfcl_doc_to_tool, bfcl_params_to_json_schema

SHIPPED = sorted(p for p in BUILTIN_DIR.glob("*/env.*") if p.suffix in (".yaml", ".yml", ".json"))

GOOD = {
    "name": "demo",
    "description": "d",
    "backend": {"class": "tool_envs.envs.inventory.backend.Inventory", "init_method": "load_state"},
    "limits": {"max_turns": 3, "call_timeout_s": 1.5},
    "tools": [
        {"type": "function", "function": {"name": "check_stock", "description": "x", "parameters": {"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}}},
    ],
}


def test_nine_shipped_schema_files_validate():
    assert len(SHIPPED) == 9
    for p in SHIPPED:
        spec = load_spec(p)
        assert spec.name == p.parent.name
        assert spec.tools


def test_good_mapping_round_trips():
    spec = spec_from_mapping(GOOD)
    assert spec.limits.max_turns == 3 and spec.limits.call_timeout_s == 1.5
    assert spec.limits.max_calls_per_turn == 16  # default
    again = spec_from_mapping(spec.to_dict())
    assert again.to_dict() == spec.to_dict()


def _bad(mutate):
    d = copy.deepcopy(GOOD)
    mutate(d)
    with pytest.raises(SchemaError) as ei:
        spec_from_mapping(d, source="bad.yaml")
    return ei.value


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda d: d.pop("name"), "$.name", "required field is missing"),
        (lambda d: d.__setitem__("tols", []), "$.tols", "unknown field"),
        (lambda d: d.__setitem__("name", "bad name!"), "$.name", "does not match"),
        (lambda d: d.__setitem__("tools", []), "$.tools", "should be non-empty"),
        (lambda d: d["tools"][0].__setitem__("type", "func"), "$.tools[0].type", "'function' was expected"),
        (lambda d: d["tools"][0]["function"].pop("parameters"), "$.tools[0].function.parameters", "required field is missing"),
        (lambda d: d["tools"][0]["function"]["parameters"].__setitem__("type", "dict"), "$.tools[0].function.parameters.type", "'object' was expected"),
        (lambda d: d["tools"][0]["function"]["parameters"]["properties"]["item"].__setitem__("type", "float"), "$.tools[0].function.parameters.properties.item.type", "not a valid JSON Schema"),
        (lambda d: d["tools"][0]["function"]["parameters"].__setitem__("required", ["nope"]), "$.tools[0].function.parameters.required", "not declared in properties"),
        (lambda d: d["tools"].append(copy.deepcopy(d["tools"][0])), "$.tools[1].function.name", "duplicate tool name"),
        (lambda d: d["limits"].__setitem__("max_turns", 0), "$.limits.max_turns", "less than the minimum"),
        (lambda d: d["limits"].__setitem__("call_timeout_s", "fast"), "$.limits.call_timeout_s", "not of type"),
        (lambda d: d["backend"].__setitem__("class", "no_such_pkg.mod.Cls"), "$.backend.class", "cannot import"),
        (lambda d: d["backend"].__setitem__("class", "tool_envs"), "$.backend.class", "does not match"),
        (lambda d: d["backend"].__setitem__("init_method", "nope"), "$.backend.init_method", "has no method"),
        (lambda d: d["tools"][0]["function"].__setitem__("name", "not_a_method"), "$.tools[0].function.name", "has no public method"),
        (lambda d: d.__setitem__("argument_checking", "loose"), "$.argument_checking", "is not one of"),
    ],
)
def test_each_bad_schema_names_file_path_and_fix(mutate, path, words):
    err = _bad(mutate)
    assert err.file == "bad.yaml"
    assert err.path == path
    assert words in str(err)
    assert "Fix:" in str(err) and str(err).startswith("bad.yaml: " + path)


def test_file_level_errors(tmp_path: pathlib.Path):
    with pytest.raises(SchemaError, match="file not found"):
        load_spec(tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_spec(p)
    p = tmp_path / "list.json"
    p.write_text("[1, 2]")
    with pytest.raises(SchemaError, match="not a mapping"):
        load_spec(p)
    p = tmp_path / "env.toml"
    p.write_text("")
    with pytest.raises(SchemaError, match="unsupported file suffix"):
        load_spec(p)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(GOOD))
    assert load_spec(ok).name == "demo"


def test_bfcl_type_mapping_is_structural():
    src = {
        "type": "dict",
        "properties": {
            "type": {"type": "string"},  # a parameter *named* type stays a property
            "x": {"type": "float"},
            "t": {"type": "tuple", "items": {"type": "integer"}},
            "anything": {"type": "any", "description": "free"},
            "nested": {"type": "dict", "properties": {"y": {"type": "float"}}},
        },
    }
    out = bfcl_params_to_json_schema(src)
    assert out["type"] == "object"
    assert out["properties"]["type"] == {"type": "string"}
    assert out["properties"]["x"]["type"] == "number"
    assert out["properties"]["t"] == {"type": "array", "items": {"type": "integer"}}
    assert "type" not in out["properties"]["anything"]
    assert out["properties"]["nested"]["properties"]["y"]["type"] == "number"
    assert src["type"] == "dict"  # input untouched
    with pytest.raises(ValueError, match="unknown BFCL type"):
        bfcl_params_to_json_schema({"type": "complex"})


def test_bfcl_any_drops_the_type_and_values_are_not_rewritten():
    # The case on which the evaluation's former converter disagreed: it narrowed `any` to `string` (so a
    # validator would refuse a correct list) and rewrote "type" keys inside values such as a default.
    doc = {"name": "math.mean", "description": "d", "parameters": {"type": "dict", "properties": {
        "v": {"type": "any", "description": "anything"},
        "opts": {"type": "dict", "default": {"type": "dict"}, "properties": {}},
        "n": {"type": "long"}, "s": {"type": "String"}, "m": {"type": "HashMap"},
    }}}
    tool = bfcl_doc_to_tool(doc, sanitize=True)
    params = tool["function"]["parameters"]
    assert tool["function"]["name"] == "math_mean"
    assert params["properties"]["v"] == {"description": "anything"}
    assert params["properties"]["opts"]["default"] == {"type": "dict"}
    assert [params["properties"][k]["type"] for k in ("n", "s", "m")] == ["integer", "string", "object"]
    assert doc["parameters"]["type"] == "dict"  # input untouched


def test_bfcl_type_map_agrees_with_bfcl_eval_except_any():
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI

    for name, openapi in GORILLA_TO_OPENAPI.items():
        assert BFCL_TYPE_MAP[name] == (None if name.lower() == "any" else openapi), name


def test_every_shipped_bfcl_doc_converts():
    import json

    from tool_envs.bfcl import bfcl_data_dir

    n = 0
    for path in sorted(bfcl_data_dir().glob("BFCL_v*.json")):
        try:  # the entry files are JSON Lines; a few data files (e.g. web-search corpora) are not entries
            entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError:
            continue
        for entry in entries:
            for doc in entry.get("function", []) if isinstance(entry.get("function"), list) else []:
                bfcl_doc_to_tool(doc)  # raises on a type the map does not know
                n += 1
    assert n > 1000


def test_generated_bfcl_schemas_are_current(tmp_path):
    """The committed env.json files equal the generator's output (regenerate with
    `python -m tool_envs.bfcl generate-schemas`)."""
    from tool_envs.bfcl import generate_schema_files

    for p in generate_schema_files(tmp_path):
        committed = BUILTIN_DIR / p.parent.name / "env.json"
        assert json.loads(p.read_text()) == json.loads(committed.read_text()), committed


def test_evaluation_prompts_show_any_as_bfcl_eval_does():
    # The eval passes untyped_as="string": its prompts keep bfcl-eval's own GORILLA_TO_OPENAPI view of `any`,
    # so scores stay comparable with the official harness, while validation keeps the type dropped.
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI

    from dipo_tools.eval.prompts import PromptConfig, build_request

    doc = {"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {
        "v": {"type": "any", "description": "anything"}, "xs": {"type": "array", "items": {"type": "any"}}}}}
    tool = bfcl_doc_to_tool(doc, untyped_as="string")
    assert tool["function"]["parameters"]["properties"]["v"]["type"] == GORILLA_TO_OPENAPI["any"]
    assert tool["function"]["parameters"]["properties"]["xs"]["items"]["type"] == GORILLA_TO_OPENAPI["any"]
    entry = {"id": "simple_0", "question": [[{"role": "user", "content": "hi"}]], "function": [doc]}
    req = build_request(entry, "simple", PromptConfig(mode="qwen"))
    assert req.tools[0]["function"]["parameters"]["properties"]["v"]["type"] == "string"
