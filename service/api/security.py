"""Bearer-token protection of model-changing endpoints."""

from __future__ import annotations

import functools
import hmac
from functools import wraps
from pathlib import Path
from typing import Any

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


def check_token() -> None:
    """Raise ``Unauthorized`` (401) unless the request carries the configured token (if any)."""
    if not token_given():
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <BACKPROP_API_TOKEN>'")


def needs_token(view) -> bool:
    """``view`` (as the app holds it) was decorated with ``require_token``."""
    return getattr(view, "requires_token", False)


def require_token(view):
    """Reject the request with 401 unless it carries the configured bearer token (if any)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        check_token()
        return view(*args, **kwargs)

    wrapper.requires_token = True  # read by the validation error handler: 401 comes before 422
    return wrapper


def server_paths() -> list[str]:
    """The data folder as configured and as resolved: texts that name it tell anonymous callers
    where this server keeps its files."""
    return list(_spellings(service_state().settings.data_dir))


@functools.cache
def _spellings(folder: Path) -> tuple[str, ...]:
    return str(folder), str(Path(folder).resolve())  # resolved once per process, not per request


def without_paths(node: Any, paths: list[str], shown_as: str = "the data folder") -> Any:
    """``node`` (JSON-like) with each of ``paths`` inside its strings replaced by ``shown_as``."""
    longest_first = sorted({path for path in paths if path}, key=len, reverse=True)

    def shown(value: Any) -> Any:
        if isinstance(value, str):
            for path in longest_first:
                value = value.replace(path, shown_as)
            return value
        if isinstance(value, dict):
            return {key: shown(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shown(item) for item in value]
        return value

    return shown(node)
