"""Java and JavaScript literals for BFCL's ``java`` / ``javascript`` categories.

bfcl's checker compares those categories' arguments as source-code strings in the target language, so the
oracle self-test must print the ground-truth values the way a model would write them.
"""
from __future__ import annotations

from typing import Any


def java_literal(v: Any, typ: str, nested: str | None = None) -> str:
    if isinstance(v, str):
        return v if typ != "String" or nested is None else f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if typ == "long":
        return f"{v}L"
    if typ == "float":
        return f"{v}f"
    if isinstance(v, list):
        # bfcl's converters: ArrayList<String> and untyped collections read quoted strings, typed Arrays read
        # bare elements through the element type's converter
        def item(x: Any) -> str:
            if isinstance(x, str):
                quoted = (typ == "ArrayList" and nested in ("String", "char")) or nested is None
                return f'"{x}"' if quoted else x
            return java_literal(x, nested or "any")
        items = [item(x) for x in v]
        if typ == "Array":
            return f"new {nested or 'Object'}[]{{{', '.join(items)}}}"
        return f"new ArrayList<>(Arrays.asList({', '.join(items)}))" if items else "new ArrayList<>()"
    if isinstance(v, dict):
        puts = " ".join(f'put("{k}", {chr(34) + x + chr(34) if isinstance(x, str) else java_literal(x, "any")});'
                        for k, x in v.items())
        return f"new HashMap<String, String>() {{{{ {puts} }}}}"
    return str(v)


def js_literal(v: Any, typ: str, top: bool = True) -> str:
    if isinstance(v, str):
        return v if top else f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if typ == "Bigint":
        return f"{v}n"
    if isinstance(v, list):
        return "[" + ", ".join(js_literal(x, "any", False) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {js_literal(x, 'any', False)}" for k, x in v.items()) + "}"
    return str(v)
