import base64
import xml.etree.ElementTree as ET

import numpy as np
import pytest

SVG = "{http://www.w3.org/2000/svg}"


def _explain(client, **body):
    response = client.post("/explain", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_integrated_gradients_explain_the_predicted_class_and_add_up(client, real_digits):
    images, labels = real_digits
    pick = images[[0, 100, 250]]
    body = _explain(client, instances=pick.tolist())
    predicted = client.post("/predict", json={"instances": pick.tolist()}).get_json()["predictions"]
    assert body["model"] == {"name": "mnist", "version": 1}
    assert (body["method"], body["score"]) == ("integrated_gradients", "logit")
    for explanation, prediction, image in zip(body["explanations"], predicted, pick, strict=True):
        assert explanation["label"] == explanation["target"] == prediction["label"]
        assert explanation["probabilities"] == pytest.approx(prediction["probabilities"], abs=1e-6)
        attributions = np.array(explanation["attributions"])
        assert attributions.shape == (784,)
        assert abs(attributions.sum() - explanation["score_change"]) <= 0.05 * abs(
            explanation["score_change"]
        )
        assert np.all(attributions[image == 0] == 0)  # black pixels are the baseline already
    assert [e["label"] for e in body["explanations"]] == labels[[0, 100, 250]].tolist()


def test_another_class_method_and_scale_can_be_asked_for(client, real_digits):
    image = real_digits[0][0]
    other = _explain(client, pixels=image.tolist(), target=3, method="gradient", score="log_probability")
    (explanation,) = other["explanations"]
    assert explanation["target"] == 3 and explanation["score_change"] is None
    unit = _explain(client, pixels=(image / 255).tolist(), scale="unit", target=3, method="gradient")
    pixel = _explain(client, pixels=image.tolist(), target=3, method="gradient")
    np.testing.assert_allclose(
        unit["explanations"][0]["attributions"], pixel["explanations"][0]["attributions"], atol=1e-5
    )


def test_smoothgrad_is_reproducible_by_its_seed(client, real_digits):
    image = real_digits[0][7].tolist()
    a = _explain(client, pixels=image, method="smoothgrad", samples=8, seed=1)["explanations"][0]
    b = _explain(client, pixels=image, method="smoothgrad", samples=8, seed=1)["explanations"][0]
    c = _explain(client, pixels=image, method="smoothgrad", samples=8, seed=2)["explanations"][0]
    assert a["attributions"] == b["attributions"] != c["attributions"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 513}, "steps"),
        ({"samples": 257}, "samples"),
        ({"noise": -0.1}, "noise"),
        ({"target": 10}, "target"),
        ({"target": "7"}, "target"),
        ({"method": "lime"}, "method"),
        ({"explain": True}, "explain"),
    ],
)
def test_bad_options_are_refused_by_name(client, body, where):
    response = client.post("/explain", json={"pixels": [0] * 784, **body})
    assert response.status_code == 422
    assert response.get_json()["error"]["message"].startswith(where)


def test_a_batch_is_bounded_so_one_request_cannot_hold_a_worker(make_client):
    client = make_client(explain_max_batch=2)
    assert client.post("/explain", json={"instances": [[0] * 784] * 2}).status_code == 200
    response = client.post("/explain", json={"instances": [[0] * 784] * 3})
    assert response.status_code == 422 and "at most 2" in response.get_json()["error"]["message"]


def test_unknown_model_and_wrong_media_type(client):
    assert client.post("/explain", json={"pixels": [0] * 784, "model": "nope"}).status_code == 404
    raw = client.post("/explain", data=bytes(784), content_type="application/octet-stream")
    assert raw.status_code == 415 and raw.get_json()["error"]["code"] == "unsupported_media_type"


def _image_query(image: np.ndarray) -> str:
    return base64.urlsafe_b64encode(image.astype(np.uint8).tobytes()).decode()


def test_a_heat_map_is_an_svg_of_every_pixel_with_its_caption(client, real_digits):
    images, labels = real_digits
    response = client.get(f"/explain/heatmap.svg?image={_image_query(images[0])}&steps=32")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    svg = ET.fromstring(response.data)
    assert svg.tag == f"{SVG}svg"
    cells = svg.findall(f"{SVG}rect")
    assert len(cells) > 784  # the digit in grey, and the attributions over it
    title = svg.find(f"{SVG}title").text
    assert title.startswith(f"mnist v1: {labels[0]} (") and "integrated gradients" in title
    coloured = [float(c.get("fill-opacity")) for c in cells if c.get("fill") in ("#d7191c", "#2c7bb6")]
    assert len(coloured) > 20 and max(coloured) == 1.0  # the strongest pixel at full strength


@pytest.mark.parametrize(
    ("query", "status", "where"),
    [
        ("image=abc", 422, "image"),
        (f"image={'A' * 1044}", 422, "image"),  # 783 bytes
        (f"image={'A' * 1045}B", 422, "image"),  # 784 bytes and 4 bits more
        (f"image={'A' * 1046}==&steps=many", 422, "steps"),
        (f"image={'A' * 1046}==&model=nope", 404, None),
        (f"image={'0' * 1045}A&model=0", 404, None),  # digits, yet text where the schema has text
        (f"image={'0' * 1045}A", 200, None),
        (f"image={'A' * 1046}==&colour=red", 422, "colour"),
    ],
)
def test_bad_heat_map_queries_are_refused(client, query, status, where):
    response = client.get(f"/explain/heatmap.svg?{query}")
    assert response.status_code == status
    if where:
        assert response.get_json()["error"]["message"].startswith(where)


def test_the_openapi_document_lists_both(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "post" in paths["/explain"] and "get" in paths["/explain/heatmap.svg"]
    names = {p["name"] for p in paths["/explain/heatmap.svg"]["get"]["parameters"]}
    assert {"image", "method", "target", "steps"} <= names
