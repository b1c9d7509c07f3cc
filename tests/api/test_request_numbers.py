"""Every number a JSON request body declares refuses ``true``: the OpenAPI document types it as an
integer or a number, which ``true`` is not, and Pydantic's lax mode would read it as 1. The fields
are found by walking the document, so a new one is checked without being listed here."""

import re

PATH_PARAMETERS = {"name": "mnist", "version": "1", "example_id": "1", "job_id": "0" * 32}


def _resolve(document: dict, schema: dict) -> dict:
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _number_locations(document: dict, schema: dict, depth: int = 3) -> list[tuple[str, ...]]:
    """Where an integer or a number sits among the object properties of ``schema``, nested objects
    included (lists and maps are not walked)."""
    found = []
    for name, prop in _resolve(document, schema).get("properties", {}).items():
        alternatives = [_resolve(document, option) for option in [prop, *prop.get("anyOf", [])]]
        if {option.get("type") for option in alternatives} & {"integer", "number"}:
            found.append((name,))
        if depth > 1:
            for option in alternatives:
                if "properties" in option:
                    found += [(name, *inner) for inner in _number_locations(document, option, depth - 1)]
    return found


def numbers_in_request_bodies(document: dict) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path with its parameters filled in, location) of every number in a JSON body."""
    found = []
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda match: PATH_PARAMETERS[match[1]], path)
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                for location in _number_locations(document, content["application/json"]["schema"]):
                    found.append((method, concrete, location))
    return found


def _body(location: tuple[str, ...]) -> object:
    body: object = True
    for name in reversed(location):
        body = {name: body}
    return body


def test_every_number_in_a_request_body_refuses_true(client):
    cases = numbers_in_request_bodies(client.get("/openapi.json").get_json())
    # The walk reaches the fields of every kind: top-level, optional, and inside a nested object.
    assert {
        ("post", "/train", ("epochs",)),
        ("put", "/models/mnist/retention", ("keep_latest",)),
        ("put", "/models/mnist/traffic", ("max_error_rate",)),
        ("put", "/models/mnist/traffic", ("shadow", "fraction")),
    } <= set(cases)
    accepted = []
    for method, path, location in cases:
        response = getattr(client, method)(path, json=_body(location))
        details = response.get_json()["error"].get("details", []) if response.status_code == 422 else []
        if not any(tuple(detail["loc"]) == location for detail in details):
            accepted.append((method, path, location, response.status_code))
    assert accepted == [], accepted
