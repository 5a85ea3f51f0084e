"""Broken on purpose: register_role() returns a list."""

ROLE_CONFIG = {"name": "returns_list", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def register_role():
    return [ROLE_CONFIG]
