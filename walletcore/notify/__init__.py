"""Notification delivery (SPEC section 7): SMS and e-mail, through the transactional outbox.

- `messages`: `SmsMessage` and `EmailMessage`, whose repr never shows a contact or a code.
- `transports`: SMTP e-mail, the SMS provider's HTTP webhook, and console printers for
  development; `transports_from_settings` picks them from `NotifierSettings`.
- `outbox`: `NotificationOutbox` writes sealed messages in the caller's transaction and gives
  the `OutboxDispatcher` its handlers.
"""

from walletcore.notify.messages import EmailMessage, SmsMessage
from walletcore.notify.outbox import TOPIC_EMAIL, TOPIC_SMS, NotificationOutbox
from walletcore.notify.transports import (
    ConsoleEmailTransport,
    ConsoleSmsTransport,
    DeliveryFailed,
    EmailTransport,
    SmsTransport,
    SmtpEmailTransport,
    Transports,
    WebhookSmsTransport,
    transports_from_settings,
)

__all__ = [
    "TOPIC_EMAIL",
    "TOPIC_SMS",
    "ConsoleEmailTransport",
    "ConsoleSmsTransport",
    "DeliveryFailed",
    "EmailMessage",
    "EmailTransport",
    "NotificationOutbox",
    "SmsMessage",
    "SmsTransport",
    "SmtpEmailTransport",
    "Transports",
    "WebhookSmsTransport",
    "transports_from_settings",
]
