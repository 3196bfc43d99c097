"""verl plugin entry point (``[project.entry-points."verl.plugins"] dipo``).

``import verl`` imports this module in every process, Ray workers included, so that the ``"dipo"``
advantage estimator and our agent loop are registered wherever verl looks them up. verl swallows plugin
import errors at DEBUG level, so failures are logged here as warnings, and the test suite checks the
registration in a fresh process.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging

logger = logging.getLogger(__name__)

# Always registered: the estimator.
from dipo_tools.verl_ext import estimator as _estimator  # noqa: E402,F401

# Registered when present: modules that register verl components on import.
_OPTIONAL_MODULES = ("dipo_tools.verl_ext.agent_loop",)

for _name in _OPTIONAL_MODULES:
    if importlib.util.find_spec(_name) is None:
        continue
    try:
        importlib.import_module(_name)
    except Exception as exc:  # a broken optional module must not hide the estimator
        logger.warning("dipo plugin: could not import %s: %s", _name, exc)
