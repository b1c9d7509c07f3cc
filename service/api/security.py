"""Bearer-token protection of model-changing endpoints."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import request

from service.api.state import service_state
from service.errors import Unauthorized

BEARER_SECURITY = [{"bearer": []}]


def token_given() -> bool:
    """The request carries the configured bearer token, or none is configured."""
    token = service_state().settings.api_token
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
