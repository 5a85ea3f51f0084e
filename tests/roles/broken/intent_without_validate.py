"""Broken on purpose: an intent that does not implement validate()."""

from dataclasses import dataclass

from common.intents import Intent

ROLE_CONFIG = {"name": "intent_without_validate", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


@dataclass
class AlarmIntent(Intent):
    when: str


async def process_alarm(intent):
    return None


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [], "intents": {AlarmIntent: process_alarm}}
