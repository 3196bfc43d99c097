#!/usr/bin/env bash
# Math track on verl (GPU cluster). Usage:
#   scripts/train_math.sh [--dry-run | --cpu-smoke] [ALGO] [MODEL] [hydra overrides...]
#     ALGO: dapo | dipo (default dipo)     MODEL: qwen3-4b-base | qwen3-8b-base | qwen2.5-7b (default qwen3-4b-base)
#   e.g. scripts/train_math.sh dipo qwen3-8b-base trainer.nnodes=2
# --dry-run composes the full verl config and validates it on CPU (no Ray, no GPU, no download).
# --cpu-smoke runs that config's real verl loop on CPU for 3 steps (tiny model of the same architecture,
#   sample data, checkpoint + resume); its last line is `metrics: <path>`. Run it before a cluster job.
# Data first: dipo data prepare math BytedTsinghua-SIA/DAPO-Math-17k data/math/train.parquet --data-source math_dapo
#             (and the eval sets: see configs/verl/_math_base.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
MODE=()
if [[ "${1:-}" == "--dry-run" || "${1:-}" == "--cpu-smoke" ]]; then MODE=("$1"); shift; fi
ALGO="${1:-dipo}"; MODEL="${2:-qwen3-4b-base}"
shift $(( $# > 2 ? 2 : $# ))
case "$ALGO" in dapo|dipo) ;; *) echo "error: ALGO must be dapo or dipo (got '$ALGO')" >&2; exit 2;; esac
case "$MODEL" in qwen3-4b-base|qwen3-8b-base|qwen2.5-7b) ;;
  *) echo "error: MODEL must be qwen3-4b-base, qwen3-8b-base or qwen2.5-7b (got '$MODEL')" >&2; exit 2;; esac
CONFIG="configs/verl/math_${ALGO}_${MODEL}.yaml"
exec "$PY" -m dipo_tools.verl_ext.cli --config "$CONFIG" "${MODE[@]}" "$@"
