"""Broken on purpose: imports a module that does not exist."""

import common.no_such_module_for_intentd  # noqa: F401

ROLE_CONFIG = {"name": "import_error", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}
