"""The CPU demo behind `dipo demo` (see run.py)."""
