"""Training engines. ``local``: single-process (CPU or one GPU) DiPO/GRPO/DAPO trainer; see README.md."""
from dipo_tools.engines.config import ConfigError, LocalConfig, load_config

__all__ = ["ConfigError", "LocalConfig", "load_config"]
