"""Broken on purpose: subscribes to a misspelling of the event its webhook posts."""

from common.intents import NotificationIntent

ROLE_CONFIG = {
    "name": "event_unpublished",
    "version": "1.0.0",
    "description": "Announce finished deploys.",
    "llm_type": "WEAK",
    "external_events": ["DEPLOY_FINISHED"],
}


def handle_deploy_finished(event_data, context):
    return [NotificationIntent(message="deployed", channel="console")]


def register_role():
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {"DEPLOY_FINSHED": handle_deploy_finished},
        "tools": [],
        "intents": {},
    }
