"""Bearer-token protection of model-changing endpoints."""

from __future__ import annotations

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


def require_token(view):
    """Reject the request with 401 unless it carries the configured bearer token (if any)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not token_given():
            raise Unauthorized("this endpoint needs 'Authorization: Bearer <BACKPROP_API_TOKEN>'")
        return view(*args, **kwargs)

    return wrapper


def server_paths() -> list[str]:
    """The data folder as configured and as resolved: texts that name it tell anonymous callers
    where this server keeps its files."""
    data_dir = service_state().settings.data_dir
    return [str(data_dir), str(Path(data_dir).resolve())]


def without_paths(node: Any, paths: list[str], shown_as: str = "the data folder") -> Any:
    """``node`` (JSON-like) with each of ``paths`` inside its strings replaced by ``shown_as``."""
    paths = sorted({path for path in paths if path}, key=len, reverse=True)
    if isinstance(node, str):
        for path in paths:
            node = node.replace(path, shown_as)
        return node
    if isinstance(node, dict):
        return {key: without_paths(value, paths, shown_as) for key, value in node.items()}
    if isinstance(node, list):
        return [without_paths(item, paths, shown_as) for item in node]
    return node
