"""Broken on purpose: imports another role's intent."""

from roles.timer import TimerIntent

ROLE_CONFIG = {"name": "imports_other_role", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_deploy(event_data, context):
    return [TimerIntent(action="create", duration="10m", label="check the deploy")]


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"DEPLOY_STARTED": handle_deploy}, "tools": [], "intents": {}}
