"""``dipo sweep``: run a grid of local-engine trainings over seeds and compare the variants in pairs.

    dipo sweep --config configs/sweeps/study.yaml                 run (or resume) everything, then report
    dipo sweep --config ... --dry-run                             list the runs, what is done, a time estimate
    dipo sweep --config ... --report-only                         rebuild RESULTS.md from finished runs
    dipo sweep --config ... --seeds 0,1 --tasks inventory         run a part of the grid
    dipo sweep --config ... --export docs/results/study           copy finished runs' records and the report
                                                                  (no weights); copy its runs/ back into an
                                                                  output_dir to resume around them
    dipo sweep --config ... parallel=2 output_dir=/tmp/s          override fields of the sweep file
"""
from __future__ import annotations

import argparse
import sys


def register_cli(sub) -> None:
    p = sub.add_parser("sweep", help="run a seeded grid of local trainings and compare variants in pairs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="sweep YAML (configs/sweeps/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the sweep file (e.g. parallel=2)")
    p.add_argument("--dry-run", action="store_true", help="validate every run's config, print the plan and exit")
    p.add_argument("--report-only", action="store_true", help="only rebuild the results from finished runs")
    p.add_argument("--tasks", default=None, help="comma list: run only these tasks")
    p.add_argument("--variants", default=None, help="comma list: run only these variants")
    p.add_argument("--seeds", default=None, help="comma list: run only these seeds")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="after the report, copy every finished run's record (config, metrics, done.json) and the "
                        "report into DIR: small enough to commit, enough to rebuild the report or resume")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (summary lines only)")
    p.set_defaults(func=cmd_sweep)


def _subset(text: str | None, allowed, what: str, cast=str):
    if text is None:
        return None
    try:
        items = [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what}: {text!r} is not a comma list of {cast.__name__}s") from None
    unknown = [x for x in items if x not in allowed]
    if unknown:
        raise ValueError(f"--{what}: {unknown} not in the sweep file; choose among {list(allowed)}")
    return set(items)


def cmd_sweep(args) -> int:
    # imported here, not at the top: `dipo sweep --help` would load matplotlib (8 s measured under load)
    from dipo_tools.sweep.report import build_report
    from dipo_tools.sweep.runner import SETTLED, Interrupted, describe, execute, export_records, plan, prepare
    from dipo_tools.sweep.spec import SweepError, load_sweep

    try:
        spec = load_sweep(args.config, args.overrides)
        jobs = plan(spec, _subset(args.tasks, spec.tasks, "tasks"), _subset(args.variants, spec.variants, "variants"),
                    _subset(args.seeds, spec.seeds, "seeds", int))
        prepare(spec, jobs)
    except (SweepError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print("\n".join(describe(spec, jobs)))
        return 0
    if not args.report_only:
        for line in describe(spec, jobs)[:4]:
            print(line)
        try:
            counts = execute(spec, jobs, progress=not args.no_progress)
        except Interrupted:
            print(f"[sweep] interrupted: running jobs were stopped. Run the same command again to resume "
                  f"(finished runs are kept; the others resume from their newest checkpoint).", file=sys.stderr)
            build_report(spec, plan(spec))
            return 130
        failed = {k: v for k, v in counts.items() if k not in SETTLED}
        if failed:
            print(f"[sweep] not finished: {failed}; see the log.txt of each failed job, then run the same command again",
                  file=sys.stderr)
    report = build_report(spec, plan(spec))
    print(f"[sweep] results: {report}")
    if args.export:
        n = export_records(plan(spec), spec, args.export)
        print(f"[sweep] exported {n} finished run record(s) and the report to {args.export}")
    return 0 if args.report_only or all(j.state in SETTLED for j in jobs) else 1
