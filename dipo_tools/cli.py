"""The ``dipo`` command.

    dipo demo                         CPU demo: tiny model, warm-up, DiPO vs GRPO, markdown report
    dipo train --config FILE [k=v]    train (engine: local | verl)
    dipo eval ...                     evaluation (BFCL, math)            [dipo_tools.eval.cli]
    dipo env list|validate|play ...   tool environments                  [tool_envs.cli]
    dipo data prepare ...             data preparation for verl          [dipo_tools.data]
    dipo sweep --config SWEEP.yaml    seeded grid of local trainings     [dipo_tools.sweep]

Sub-commands owned by other packages are imported only when used, so ``dipo --help`` stays fast and a
missing optional part gives a clear message instead of a traceback: this module imports nothing heavy at
the top (measured with ``python -X importtime -m dipo_tools.cli --help``: 79 modules, no torch, verl, ray or
omegaconf), and each command imports its engine inside its function.
"""
from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import signal
import sys
from collections.abc import Sequence

# name -> (candidate modules exposing register_cli(subparsers), help)
MOUNTED: dict[str, tuple[tuple[str, ...], str]] = {
    "eval": (("dipo_tools.eval.cli",), "evaluate a model (BFCL V3, math)"),
    "env": (("tool_envs.cli",), "list, validate and play tool environments"),
    "data": (("dipo_tools.data.prepare",), "prepare datasets (dipo data prepare ...)"),
    "sweep": (("dipo_tools.sweep.cli",), "run a seeded grid of local trainings, compare variants in pairs"),
}


def _mount(sub, name: str) -> None:
    modules, help_text = MOUNTED[name]
    errors = []
    for mod_name in modules:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            errors.append(f"{mod_name}: {e}")
            continue
        register = getattr(mod, "register_cli", None)
        if register is None:
            errors.append(f"{mod_name} has no register_cli(subparsers)")
            continue
        register(sub)
        return
    _placeholder(sub, name, help_text, "; ".join(errors))


def _placeholder(sub, name: str, help_text: str, reason: str | None = None) -> None:
    p = sub.add_parser(name, help=help_text, add_help=reason is not None)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(args) -> int:
        print(f"error: `dipo {name}` is not available in this installation ({reason}). "
              f"Reinstall the package (make install) or check that the module exists.", file=sys.stderr)
        return 2

    p.set_defaults(func=unavailable)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a policy (engine: local | verl) from a YAML config",
                       description="Train with a YAML config (see configs/local/*.yaml). Extra key=value "
                                   "arguments override config entries, e.g. trainer.total_steps=10 "
                                   "algorithm.name=grpo.")
    p.add_argument("--config", required=True, help="YAML file (configs/local/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (OmegaConf dot-list)")
    p.add_argument("--engine", choices=("local", "verl"), default=None,
                   help="override the config's `engine` key (verl configs live in configs/verl/)")
    p.add_argument("--dry-run", action="store_true", help="validate the config, print it and exit")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="verl configs: run the config's real verl loop on CPU for 3 steps (tiny model, sample "
                        "data, checkpoint + resume) before a cluster job; last line 'metrics: <path>'")
    p.add_argument("--smoke-dir", default=None, help="output folder of --cpu-smoke")
    p.add_argument("--allow-missing-data", action="store_true",
                   help="verl --dry-run: only note data files missing here (data that lives on the cluster)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from omegaconf import OmegaConf

    from dipo_tools.engines.config import ConfigError, config_to_dict, engine_of, load_config

    try:  # explicit: --engine, else the file's `engine` key (verl takes config names too: not read then)
        engine = engine_of(args.config, args.overrides, args.engine)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if engine == "verl":
        try:
            verl_cli = importlib.import_module("dipo_tools.verl_ext.cli")
        except ImportError as e:
            print(f"error: engine 'verl' needs dipo_tools.verl_ext and verl ({e})", file=sys.stderr)
            return 2
        argv = ["--config", args.config, *[o for o in args.overrides if not o.startswith("engine=")]]
        argv += ["--dry-run"] if args.dry_run else []
        argv += ["--allow-missing-data"] if args.allow_missing_data else []
        argv += ["--cpu-smoke"] if args.cpu_smoke else []
        argv += ["--smoke-dir", args.smoke_dir] if args.smoke_dir else []
        return verl_cli.main(argv)
    if args.cpu_smoke:
        print("error: --cpu-smoke runs verl configs (configs/verl/); the local engine already runs on CPU "
              "(use trainer.total_steps=2 for a quick check)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(OmegaConf.to_yaml(config_to_dict(cfg)))
        return 0
    from dipo_tools.engines.local import TrainingInputError, latest_checkpoint, run_training

    try:
        out = run_training(cfg)
    except TrainingInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        ckpt = latest_checkpoint(cfg.trainer.output_dir)
        where = f"the last checkpoint is {ckpt}" if ckpt else \
            "no checkpoint was saved yet (set trainer.save_every to save during training)"
        resume = " ".join(["dipo train --config", args.config, *[o for o in args.overrides if not o.startswith("trainer.resume=")],
                           "trainer.resume=auto"])
        print(f"\n[dipo] interrupted: {where}.\n[dipo] resume with: {resume}", file=sys.stderr)
        return 130
    print(train_summary(out))
    return 0


def train_summary(out: dict) -> str:
    """What ``dipo train`` says at the end: final reward and success, and where everything was written."""
    rows = out.get("rows") or []
    last = {}
    for r in rows:  # the latest value of every metric
        last.update({k: v for k, v in r.items() if isinstance(v, (int, float))})
    lines = [f"[dipo] done: {out['steps']} steps"]
    for prefix, name in (("train", "training"), ("eval", "held-out")):
        if f"{prefix}/reward" in last:
            lines.append(f"[dipo] final {name} reward {last[f'{prefix}/reward']:.3f}, success {last[f'{prefix}/success']:.3f}")
    lines.append(f"[dipo] metrics: {out.get('metrics')} (TensorBoard logs beside it)")
    if out.get("plots"):
        lines.append(f"[dipo] plots: {len(out['plots'])} PNG files in {os.path.dirname(out['plots'][0])}")
    if out.get("checkpoint"):
        lines.append(f"[dipo] checkpoint: {out['checkpoint']} (continue with trainer.resume=auto)")
    lines.append(f"[dipo] final model (Hugging Face format): {out.get('final_model')}")
    return "\n".join(lines)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="CPU demo: tiny model, SFT warm-up, DiPO vs GRPO, report (~10 min)",
                       description="Builds a tiny Qwen2 + tokenizer locally (no downloads), warms it up on a "
                                   "schema-file environment's tasks, trains DiPO and GRPO from the same start and "
                                   "writes REPORT.md with plots.")
    p.add_argument("--config", default=None, help="demo YAML (default: configs/local/demo.yaml)")
    p.add_argument("--output-dir", default=None, help="where to write the report (default: outputs/demo)")
    p.add_argument("--steps", type=int, default=None, help="RL steps per algorithm (overrides the config)")
    p.add_argument("--algorithms", default=None, help="comma list among dipo,grpo,dapo")
    p.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the demo config")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from dipo_tools.config_utils import ConfigError  # (it loads omegaconf: +130 modules on `dipo --help`)

    try:
        from dipo_tools.demo.run import run_demo
    except ImportError as e:
        print(f"error: the demo is not available ({e})", file=sys.stderr)
        return 2
    try:
        report = run_demo(config=args.config, output_dir=args.output_dir, steps=args.steps,
                          algorithms=args.algorithms.split(",") if args.algorithms else None,
                          quick=args.quick, overrides=args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from dipo_tools.demo.run import output_dir_of
        from dipo_tools.engines.local import latest_checkpoint

        out = output_dir_of(args.config, args.output_dir, args.overrides)
        ckpts = [c for c in (latest_checkpoint(os.path.join(out, a)) for a in ("dipo", "grpo", "dapo")) if c]
        where = f"last checkpoints: {', '.join(ckpts)}" if ckpts else "no checkpoint was saved yet"
        argv = [a for a in sys.argv[1:] if not a.startswith("trainer.resume=")] if sys.argv[1:2] == ["demo"] else ["demo"]
        print(f"\n[dipo] interrupted: {where}.\n[dipo] resume with: dipo {' '.join(argv)} trainer.resume=auto", file=sys.stderr)
        return 130
    print(f"[dipo] demo report: {report}")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dipo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{demo,train,eval,env,data,sweep}")
    _add_demo(sub)
    _add_train(sub)
    wanted = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (_, help_text) in MOUNTED.items():
        if name == wanted:
            _mount(sub, name)
        else:  # not requested: a cheap stand-in that keeps `dipo --help` fast
            _placeholder(sub, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # `kill -USR1 <pid>` prints every thread's stack to stderr: where a run that seems stuck is waiting
    if hasattr(signal, "SIGUSR1"):
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        except (OSError, ValueError):  # stderr is not a file (captured, e.g. when embedded): no stack dumps
            pass
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
