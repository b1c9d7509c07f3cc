"""Bearer-token protection of model-changing endpoints, and refusing unsafe binds."""

from __future__ import annotations

import hmac
import ipaddress
from functools import wraps

from flask import current_app, request

from service.errors import Unauthorized, UnsafeConfiguration
from service.settings import Settings

BEARER_SECURITY = [{"bearer": []}]


def token_given() -> bool:
    """The request carries the configured bearer token, or none is configured."""
    token = current_app.extensions["backprop"].settings.api_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def require_token(view):
    """Reject the request with 401 unless it carries the configured bearer token (if any)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not token_given():
            raise Unauthorized("this endpoint needs 'Authorization: Bearer <BACKPROP_API_TOKEN>'")
        return view(*args, **kwargs)

    return wrapper


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str | None = None) -> None:
    """Refuse a non-loopback bind while model-changing endpoints are open to anyone."""
    host = host or settings.host
    if is_loopback(host) or settings.api_token is not None or settings.allow_insecure:
        return
    raise UnsafeConfiguration(
        f"refusing to listen on {host} with model-changing endpoints open: set BACKPROP_API_TOKEN, "
        "or BACKPROP_ALLOW_INSECURE=1 to accept the risk, or bind to 127.0.0.1"
    )
