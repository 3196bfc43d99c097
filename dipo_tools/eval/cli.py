"""``dipo eval bfcl …`` / ``dipo eval math …`` / ``dipo eval bfcl-official …``: mounted by the ``dipo`` CLI."""
from __future__ import annotations

import argparse


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` command (with ``bfcl``, ``math`` and ``bfcl-official``) to an argparse subparsers object.

    Each leaf parser sets ``func`` (``args.func(args) -> int``)."""
    from dipo_tools.eval import bfcl, math as math_eval, official

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
    official.add_official_args(o)
    o.set_defaults(func=official.run_from_args)
    return ev


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dipo")
    register_cli(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
