"""The pages as the app serves them, without a browser: the training form comes from the API's
schema, the model-name rule is the store's, and the API docs are Swagger UI under a CSP."""

import re

from service.names import NAME_PATTERN, NAME_RULE, is_name
from service.training import TrainingConfig
from service.web import html_pattern, training_form


def test_the_training_form_offers_the_apis_defaults_and_bounds(client):
    form = training_form()
    defaults = TrainingConfig()
    assert form["hidden"]["value"] == " ".join(map(str, defaults.hidden)) == "512 256"
    assert form["epochs"] == {"value": defaults.epochs, "min": 1, "max": 500, "choices": []}
    assert form["optimizer"]["choices"] == ["sgd", "momentum", "adam"]
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'id="hidden" name="hidden" value="512 256"' in page
    assert f'value="{defaults.epochs}"' in page and '<option value="adam" selected>' in page


def test_the_name_field_holds_the_stores_rule(client):
    page = client.get("/dashboard").get_data(as_text=True)
    pattern = re.search(r'id="model-name"[^>]*pattern="([^"]+)"', page).group(1)
    browser_like = re.compile(f"^(?:{pattern.replace(chr(92) + '-', '-')})$")
    for name in ("mnist", "my-digits_2", "v1.2", "MyDigits", "-x", "a..b", "x y"):
        assert bool(browser_like.match(name)) == is_name(name), name
    assert html_pattern(NAME_PATTERN) == pattern
    assert NAME_RULE.replace("'", "&#39;") in page


def test_a_refused_name_is_said_in_words(client):
    answer = client.post("/train", json={"model": "MyDigits"})
    assert answer.status_code == 422
    assert answer.json["error"]["message"] == f"model: a model name is {NAME_RULE}"


def test_a_body_that_is_not_json_is_a_415_that_says_how_to_send_it(client):
    for method, path in (("post", "/train"), ("put", "/models/mnist/default")):
        answer = getattr(client, method)(path, data='{"epochs": 1}', content_type="text/plain")
        assert answer.status_code == 415
        assert answer.json["error"]["message"] == (
            "send the body as a JSON object with Content-Type: application/json (it came as text/plain)"
        )
    assert client.post("/train", json=[1]).status_code == 422  # JSON, just not an object


def test_the_api_docs_are_swagger_ui_with_a_content_security_policy(client):
    for path in ("/docs/", "/docs/swagger"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        page = answer.get_data(as_text=True)
        assert "swagger-ui-bundle.js" in page and "<script>" not in page  # no inline script
