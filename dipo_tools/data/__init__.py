"""Data preparation: source datasets → verl parquet (see ``python -m dipo_tools.data.prepare -h``)."""
from dipo_tools.data.common import DataPrepError, read_records, write_verl_parquet

__all__ = ["DataPrepError", "read_records", "write_verl_parquet"]
