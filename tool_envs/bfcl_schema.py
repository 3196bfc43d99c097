"""The one BFCL function-doc → JSON Schema converter: the BFCL environments' schema files and the BFCL
evaluation prompts both use it."""
from __future__ import annotations

import copy
from typing import Any, Mapping

#: BFCL's parameter type names mapped to JSON Schema; ``None`` drops the type. Python-ish names (``dict``,
#: ``float``, ``tuple``) come from the Python categories, Java/JavaScript names (``String``, ``HashMap``,
#: ``long``...) from the single-turn Java/JS categories; they map as bfcl-eval's own ``GORILLA_TO_OPENAPI``
#: does, except ``any`` (and one entry's empty ``""``): any value is allowed, so the type is dropped rather
#: than narrowed to ``string`` (a validator would otherwise refuse a correct non-string argument).
BFCL_TYPE_MAP: dict[str, str | None] = {
    "any": None, "Any": None, "": None,
    "integer": "integer", "number": "number", "string": "string", "boolean": "boolean",
    "array": "array", "object": "object", "null": "null",
    "dict": "object", "float": "number", "tuple": "array", "list": "array", "bool": "boolean",
    "int": "integer", "str": "string",
    "byte": "integer", "short": "integer", "long": "integer", "Bigint": "integer", "double": "number",
    "char": "string", "String": "string", "Boolean": "boolean",
    "Array": "array", "ArrayList": "array", "Queue": "array", "Stack": "array",
    "HashMap": "object", "Hashtable": "object",
}


def bfcl_params_to_json_schema(schema: Any, untyped_as: str | None = None) -> Any:
    """Convert a BFCL parameter schema (types ``dict``/``float``/``tuple``/``any``) to JSON Schema.

    Walks the schema structurally (``properties`` values, ``items``, ``additionalProperties``), so a
    parameter that happens to be *named* ``type`` is left alone. ``untyped_as``: the type shown for ``any``
    (``None`` drops it, right for validating arguments; ``"string"`` is what bfcl-eval's own prompts show, so
    evaluation prompts stay identical to the official harness's).
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    t = out.get("type")
    if isinstance(t, str):
        if t not in BFCL_TYPE_MAP:
            raise ValueError(f"unknown BFCL type {t!r}; known: {sorted(BFCL_TYPE_MAP)}")
        mapped = BFCL_TYPE_MAP[t] or untyped_as
        if mapped is None:
            del out["type"]
        else:
            out["type"] = mapped
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: bfcl_params_to_json_schema(v, untyped_as) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = bfcl_params_to_json_schema(out["items"], untyped_as)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = bfcl_params_to_json_schema(out["additionalProperties"], untyped_as)
    return out


def sanitize_name(name: str) -> str:
    """OpenAI-style APIs accept ``^[a-zA-Z0-9_-]{1,64}$`` only; BFCL names such as ``math.factorial`` have dots."""
    return name.replace(".", "_")


def bfcl_doc_to_tool(doc: Mapping[str, Any], *, sanitize: bool = False, untyped_as: str | None = None) -> dict:
    """A BFCL function doc → an OpenAI function schema ``{"type": "function", "function": {...}}``.

    The one BFCL → JSON Schema conversion: the environment schemas and the BFCL evaluation prompts use it
    (the prompts with ``untyped_as="string"``, see :func:`bfcl_params_to_json_schema`).
    """
    params = bfcl_params_to_json_schema(copy.deepcopy(doc.get("parameters")) or {"type": "object", "properties": {}},
                                        untyped_as)
    params["type"] = "object"
    name = sanitize_name(doc["name"]) if sanitize else doc["name"]
    return {"type": "function", "function": {"name": name, "description": doc.get("description", ""), "parameters": params}}
