import logging

from service.api.state import service_state


def test_every_http_error_is_json(client):
    cases = [
        (client.get("/no/such/path"), 404, "not_found"),
        (client.put("/predict"), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert response.status_code == status and response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == code
    assert "POST" in cases[1][0].headers["Allow"]


def test_unexpected_errors_are_a_500_without_internals(app, client, caplog, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret path /srv/internal.py")

    monkeypatch.setattr(service_state(app).registry, "get", explode)
    with caplog.at_level(logging.ERROR):
        response = client.post("/predict", json={"pixels": [0] * 784}, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error == {
        "code": "internal_error",
        "message": "internal server error (request id req-42)",
        "details": [],
    }
    assert b"secret" not in response.data and b"Traceback" not in response.data
    assert "req-42" in caplog.text and "secret path" in caplog.text


def test_request_id_is_echoed_or_created(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    created = client.get("/healthz").headers["X-Request-ID"]
    assert len(created) == 32
    # Header injection or junk is replaced, not echoed.
    assert (
        client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
        != "bad id"
    )


def test_request_id_is_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="service.access"):
        client.get("/healthz", headers={"X-Request-ID": "trace-me"})
    assert any("trace-me" in r.getMessage() and "/healthz" in r.getMessage() for r in caplog.records)


def test_the_document_describes_the_errors_and_bodies_we_send(client):
    doc = client.get("/openapi.json").get_json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            # The Open Inference Protocol has its own error shape, and no 422
            shape = "ProtocolError" if path.startswith("/v2") else "ErrorBody"
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path, status)
                    assert not (shape == "ProtocolError" and status == "422")
    predict = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert predict["allOf"][0]["oneOf"] == [{"required": ["pixels"]}, {"required": ["instances"]}]
    unit_scale = predict["allOf"][1]["anyOf"]  # scale "unit" means values of at most 1
    assert unit_scale[1]["properties"]["pixels"]["items"]["maximum"] == 1
    assert predict["additionalProperties"] is False
