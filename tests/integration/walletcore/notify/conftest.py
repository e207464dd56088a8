from tests.support.notify import sms_webhook_catcher, smtp_catcher  # noqa: F401
