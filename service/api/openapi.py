"""Pieces of the OpenAPI document that flask-openapi3 does not write from the views' models itself:
request bodies with several media types, whose JSON schema must stand on its own."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place: a schema set into a request body
    by hand is not hoisted to ``components``, so a ``#/$defs/...`` reference would lead nowhere."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) >= {"$ref"} and node["$ref"].startswith("#/$defs/"):
                rest = {k: inline(v) for k, v in node.items() if k != "$ref"}
                return {**inline(definitions[node["$ref"].removeprefix("#/$defs/")]), **rest}
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


def restore_key_patterns(document: Any, models: list[type[BaseModel]]) -> None:
    """Put back the rule of dict keys (``patternProperties``, with no other keys allowed) that
    flask-openapi3 drops from the schemas of ``models``, wherever the document holds one of them
    (a component, or a request body written in place)."""
    fields = {}
    for model in models:
        for name, schema in model.model_json_schema()["properties"].items():
            if "patternProperties" in schema:
                fields.setdefault(model.__name__, {})[name] = {**schema, "additionalProperties": False}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for name, schema in fields.get(node.get("title"), {}).items():
                if name in node.get("properties", {}):
                    node["properties"][name] = {**node["properties"][name], **schema}
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(document)
