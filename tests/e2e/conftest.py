"""The services as separate processes, talking to real local SMTP and SMS webhook peers."""

from __future__ import annotations

from tests.support.notify import sms_webhook_catcher, smtp_catcher

__all__ = ["sms_webhook_catcher", "smtp_catcher"]
