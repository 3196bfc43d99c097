"""Fail the install if it pulled a CUDA build of torch or any nvidia wheel onto a CPU machine."""
from __future__ import annotations

import importlib.metadata as md
import sys


def main() -> int:
    import torch

    problems = []
    if torch.version.cuda is not None and not torch.cuda.is_available():
        problems.append(f"torch {torch.__version__} is a CUDA build on a machine without a GPU")
    nvidia = sorted(d.metadata["Name"] for d in md.distributions()
                    if (d.metadata["Name"] or "").lower().startswith(("nvidia-", "cuda-", "triton")))
    if nvidia and not torch.cuda.is_available():
        problems.append("GPU wheels installed on a CPU machine: " + ", ".join(nvidia))
    for p in problems:
        print(f"install check: {p}", file=sys.stderr)
    if not problems:
        print(f"install check: torch {torch.__version__} (CPU build), no nvidia wheels")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
