"""Notification delivery (SPEC section 7): SMS and e-mail, through the transactional outbox.

- `messages`: `SmsMessage` and `EmailMessage`, whose repr never shows a contact or a code.
- `transports`: SMTP e-mail, the SMS provider's HTTP webhook, and console printers for
  development; `transports_from_settings` picks them from `NotifierSettings`.
- `inbox`: the development inbox, a JSON-lines file every message is also appended to when
  `NotifierSettings.inbox_path` is set, and its reader (`DevelopmentInbox.wait_for`).
- `outbox`: `NotificationOutbox` writes sealed messages in the caller's transaction and gives
  the `OutboxDispatcher` its handlers.
"""

from walletcore.notify.inbox import DevelopmentInbox, InboxMessage, one_time_code
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
    "DevelopmentInbox",
    "EmailMessage",
    "EmailTransport",
    "InboxMessage",
    "NotificationOutbox",
    "SmsMessage",
    "SmsTransport",
    "SmtpEmailTransport",
    "Transports",
    "WebhookSmsTransport",
    "one_time_code",
    "transports_from_settings",
]
