#!/usr/bin/env bash
# Tool-calling track on verl (GPU cluster). Usage:
#   scripts/train_tool.sh [--dry-run | --cpu-smoke] [ALGO] [SIZE] [hydra overrides...]
#     ALGO: grpo | dapo | dipo (default dipo)     SIZE: 3b | 7b (default 3b)
#   e.g. scripts/train_tool.sh dipo 7b trainer.n_gpus_per_node=8 data.train_files=/data/toolrl/train.parquet
# --dry-run composes the full verl config and validates it on CPU (no Ray, no GPU, no download).
# --cpu-smoke runs that config's real verl loop on CPU for 3 steps (tiny model of the same architecture,
#   sample data, checkpoint + resume); its last line is `metrics: <path>`. Run it before a cluster job.
# Data first: dipo data prepare toolrl <rlla_rl.json> data/toolrl --test-fraction 0.02
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
MODE=()
if [[ "${1:-}" == "--dry-run" || "${1:-}" == "--cpu-smoke" ]]; then MODE=("$1"); shift; fi
ALGO="${1:-dipo}"; SIZE="${2:-3b}"
shift $(( $# > 2 ? 2 : $# ))
case "$ALGO" in grpo|dapo|dipo) ;; *) echo "error: ALGO must be grpo, dapo or dipo (got '$ALGO')" >&2; exit 2;; esac
case "$SIZE" in 3b|7b) ;; *) echo "error: SIZE must be 3b or 7b (got '$SIZE')" >&2; exit 2;; esac
CONFIG="configs/verl/tool_${ALGO}_qwen2.5-${SIZE}.yaml"
exec "$PY" -m dipo_tools.verl_ext.cli --config "$CONFIG" "${MODE[@]}" "$@"
