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

from omegaconf import OmegaConf

from dipo_tools.config_utils import ConfigError
from dipo_tools.verl_ext.main import run_verl_training
from dipo_tools.verl_ext.smoke import SmokeError, run_cpu_smoke


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML path or shipped config name (configs/verl/)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. trainer.n_gpus_per_node=8")
    parser.add_argument("--dry-run", action="store_true", help="compose and validate on CPU, then exit")
    parser.add_argument("--print-config", action="store_true", help="print the composed config (with --dry-run)")
    parser.add_argument("--allow-missing-data", action="store_true",
                        help="with --dry-run: only note data files missing here (data that lives on the cluster)")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run this config's real verl loop on CPU for 3 steps (tiny model, sample data, "
                             "checkpoint + resume); last line: 'metrics: <path>'")
    parser.add_argument("--smoke-dir", default=None, help="output folder of --cpu-smoke (default outputs/cpu_smoke/NAME)")


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "cpu_smoke", False):
        return _run_smoke(args)
    try:
        cfg = run_verl_training(args.config, list(args.overrides), dry_run=args.dry_run,
                                allow_missing_data=args.allow_missing_data)
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


def _run_smoke(args: argparse.Namespace) -> int:
    if args.dry_run:
        print("error: --cpu-smoke and --dry-run are exclusive (the smoke run validates the config first)", file=sys.stderr)
        return 2
    try:
        metrics = run_cpu_smoke(args.config, list(args.overrides), out_dir=args.smoke_dir)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SmokeError as exc:
        print(f"error: cpu smoke failed: {exc}", file=sys.stderr)
        return 1
    print(f"metrics: {metrics}")
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
