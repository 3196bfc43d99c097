"""Seeded experiment grids on the local engine: ``dipo sweep --config configs/sweeps/<study>.yaml``.

``spec`` reads the sweep file, ``runner`` plans and runs its jobs as subprocesses (``worker``),
``report`` turns finished runs into one table with paired comparisons (``stats``). See docs/sweeps.md.
"""
from dipo_tools.sweep.spec import SweepError, SweepSpec, load_sweep

__all__ = ["SweepError", "SweepSpec", "load_sweep"]
