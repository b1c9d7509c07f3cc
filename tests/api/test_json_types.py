"""Every number a JSON request body declares refuses ``true`` and ``"1"``, and every boolean
``"yes"``: the OpenAPI document types them as JSON does, while Pydantic's lax mode would read
``true`` and ``"1"`` as 1 and ``"yes"`` as true. The fields are found by walking the document, so a
new one is checked without being listed here."""

import re

PATH_PARAMETERS = {"name": "mnist", "version": "1", "example_id": "1", "job_id": "0" * 32}


def _resolve(document: dict, schema: dict) -> dict:
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _locations(document: dict, schema: dict, kinds: set[str], depth: int = 3) -> list[tuple[str, ...]]:
    """Where a property of one of these JSON Schema ``kinds`` sits among the object properties of
    ``schema``, nested objects included (lists and maps are not walked)."""
    found = []
    for name, prop in _resolve(document, schema).get("properties", {}).items():
        alternatives = [_resolve(document, option) for option in [prop, *prop.get("anyOf", [])]]
        if {option.get("type") for option in alternatives} & kinds:
            found.append((name,))
        if depth > 1:
            for option in alternatives:
                if "properties" in option:
                    found += [(name, *inner) for inner in _locations(document, option, kinds, depth - 1)]
    return found


def request_body_fields(document: dict, kinds: set[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path with its parameters filled in, location) of every field of these kinds in a
    JSON body."""
    found = []
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda match: PATH_PARAMETERS[match[1]], path)
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                for location in _locations(document, content["application/json"]["schema"], kinds):
                    found.append((method, concrete, location))
    return found


def _body(location: tuple[str, ...], value: object) -> object:
    body = value
    for name in reversed(location):
        body = {name: body}
    return body


def _accepted(client, cases: list, value: object) -> list:
    """The cases whose field took ``value``: no error naming that field, in the service's shape (a
    422 with details) or the inference protocol's (a 400 with one sentence)."""
    accepted = []
    for method, path, location in cases:
        response = getattr(client, method)(path, json=_body(location, value))
        error = response.get_json().get("error") if response.status_code in (400, 422) else None
        if isinstance(error, str):
            named = error.startswith(".".join(location) + ":")
        else:
            named = error is not None and any(tuple(detail["loc"]) == location for detail in error["details"])
        if not named:
            accepted.append((method, path, location, response.status_code))
    return accepted


def test_every_number_in_a_request_body_refuses_true_and_text(client):
    cases = request_body_fields(client.get("/openapi.json").get_json(), {"integer", "number"})
    # The walk reaches the fields of every kind: top-level, optional, and inside a nested object.
    assert {
        ("post", "/train", ("epochs",)),
        ("put", "/models/mnist/retention", ("keep_latest",)),
        ("put", "/models/mnist/traffic", ("max_error_rate",)),
        ("put", "/models/mnist/traffic", ("shadow", "fraction")),
    } <= set(cases)
    accepted = _accepted(client, cases, True) + _accepted(client, cases, "1")
    assert accepted == [], accepted


def test_every_boolean_in_a_request_body_refuses_yes(client):
    cases = request_body_fields(client.get("/openapi.json").get_json(), {"boolean"})
    assert {
        ("post", "/train", ("make_default",)),
        ("put", "/models/mnist/default", ("service_wide",)),
    } <= set(cases)
    accepted = _accepted(client, cases, "yes")
    assert accepted == [], accepted
