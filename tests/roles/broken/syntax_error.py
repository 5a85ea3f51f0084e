"""Broken on purpose: a syntax error."""

ROLE_CONFIG = {"name": "syntax_error", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def register_role(:
    return {}
