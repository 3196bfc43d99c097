"""``dipo eval bfcl …`` / ``dipo eval math …`` / ``dipo eval bfcl-official …``: mounted by the ``dipo`` CLI."""
from __future__ import annotations

import argparse


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` command (with ``bfcl``, ``math`` and ``bfcl-official``) to an argparse subparsers object.

    Each leaf parser sets ``func`` (``args.func(args) -> int``)."""
    from dipo_tools.eval import bfcl, math as math_eval

    ev = subparsers.add_parser("eval", help="evaluate a policy: BFCL V3, math mean@k/maj@k",
                               description="Evaluate a policy (OpenAI-compatible endpoint, local transformers "
                                           "model, or the oracle/empty self-tests).")
    sub = ev.add_subparsers(dest="eval_cmd", required=True)

    b = sub.add_parser("bfcl", help="BFCL V3 (non-live, live, multi-turn) with the V3 overall",
                       description=bfcl.__doc__.split("\n\n")[0])
    bfcl.add_bfcl_args(b)
    b.set_defaults(func=bfcl.run_from_args)

    m = sub.add_parser("math", help="mean@k / maj@k / pass@k with math-verify",
                       description=math_eval.__doc__.split("\n\n")[0])
    math_eval.add_math_args(m)
    m.set_defaults(func=math_eval.run_from_args)

    o = sub.add_parser("bfcl-official", help="cross-check with bfcl-eval's own generate+evaluate against a server")
    o.add_argument("--base-url", required=True)
    o.add_argument("--model", required=True, help="model name the server serves")
    o.add_argument("--categories", default="all")
    o.add_argument("--ids", default=None)
    o.add_argument("--project-root", required=True, help="bfcl's result/score folder root")
    o.add_argument("--api-key", default="EMPTY")
    o.set_defaults(func=_run_official)
    return ev


def _run_official(args: argparse.Namespace) -> int:
    import json

    from dipo_tools.eval.official import run_official

    rep = run_official(args.base_url, args.model, args.categories, args.project_root,
                       ids=args.ids.split(",") if args.ids else None, api_key=args.api_key)
    print(json.dumps({"summary": rep["summary"], "categories": {k: v["accuracy"] for k, v in rep["categories"].items()}},
                     indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dipo")
    register_cli(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
