"""Hydra config package of the verl entry point (``pkg://dipo_tools.verl_ext.config``)."""
