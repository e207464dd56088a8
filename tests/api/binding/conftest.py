"""Binding's adapters against real peers: a real auth from auth's API test fixtures."""

from tests.api.auth.conftest import auth_app, auth_backend, start_auth  # noqa: F401
from tests.support.notify import sms_webhook_catcher, smtp_catcher  # noqa: F401
