"""Numbers in request bodies as JSON has them.

JSON, and the JSON Schema of the OpenAPI document, know one kind of number: ``371.0`` is an
integer there, while ``true`` and ``"371"`` are not numbers at all. Pydantic's strict mode refuses
``371.0``, and its lax mode takes ``"371"`` and ``true``; these types take what the document says.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_int(**bounds: int) -> Any:
    """An integer type with its bounds (``ge=1, le=4096``): ``epochs: json_int(ge=1) = 30``. The
    bounds go here, before the conversion, not in the field's ``Field``: Pydantic leaves bounds
    placed after a conversion out of the JSON Schema when the type sits in a list or a union."""
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_integral)]
