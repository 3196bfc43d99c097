"""Command line of the verl engine: ``dipo train --engine verl`` delegates here (``main(argv)``), and
``register_cli`` mounts the same thing as ``dipo verl``.

    dipo verl --config configs/verl/tool_dipo_qwen2.5-3b.yaml [key=value ...] [--dry-run]

``--config`` takes a YAML path or the name of a shipped config (``configs/verl/<name>.yaml``); without it
the base ``dipo_trainer`` config is used. Overrides use hydra syntax (``+new.key=v`` for keys verl's
dataclass-backed sections do not define). ``--dry-run`` composes the full verl config and validates it
on CPU (no Ray, no GPU, no download) — run it before submitting a cluster job.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML path or shipped config name (configs/verl/)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. trainer.n_gpus_per_node=8")
    parser.add_argument("--dry-run", action="store_true", help="compose and validate on CPU, then exit")
    parser.add_argument("--print-config", action="store_true", help="print the composed config (with --dry-run)")


def _run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from dipo_tools.verl_ext.main import run_verl_training
    from dipo_tools.verl_ext.validation import ConfigError

    try:
        cfg = run_verl_training(args.config, list(args.overrides), dry_run=args.dry_run)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # hydra composition errors (unknown key, bad override) name the key already
        if type(exc).__module__.startswith("hydra") or type(exc).__module__.startswith("omegaconf"):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    if args.dry_run and args.print_config:
        print(OmegaConf.to_yaml(cfg))
    return 0


def register_cli(subparsers) -> None:
    """Mount ``dipo verl ...`` (train with verl, or ``--dry-run`` to validate a config on CPU)."""
    p = subparsers.add_parser("verl", help="train with verl on GPUs, or --dry-run to validate a config on CPU",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dipo train --engine verl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return _run(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
