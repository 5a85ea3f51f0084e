"""Broken on purpose: has no register_role()."""

ROLE_CONFIG = {"name": "no_register_role", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}
