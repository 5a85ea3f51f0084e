"""Broken on purpose: an intent handler that is a plain function."""

from dataclasses import dataclass

from common.intents import Intent

ROLE_CONFIG = {"name": "intent_handler_sync", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


@dataclass
class AlarmIntent(Intent):
    when: str

    def validate(self) -> bool:
        return bool(self.when)


def process_alarm(intent, services):
    return None


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [], "intents": {AlarmIntent: process_alarm}}
