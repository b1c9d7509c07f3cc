import io
import json

import numpy as np
import pytest
from PIL import Image

from service.api.state import service_state

BLANK = [0] * 784


def test_single_image(client, real_digits):
    images, labels = real_digits
    response = client.post("/predict", json={"pixels": images[0].tolist()})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"] == {"name": "mnist", "version": 1}
    (prediction,) = body["predictions"]
    assert prediction["label"] == labels[0]
    assert len(prediction["probabilities"]) == 10 and sum(prediction["probabilities"]) == pytest.approx(
        1, abs=1e-5
    )


def test_batch_classifies_real_digits(client, real_digits):
    images, labels = real_digits
    response = client.post("/predict", json={"instances": images.tolist()})
    predicted = [p["label"] for p in response.get_json()["predictions"]]
    assert len(predicted) == 500 and np.mean(np.array(predicted) == labels) >= 0.96


def test_unit_scale_gives_the_same_answer(client, real_digits):
    images, _ = real_digits
    pixel = client.post("/predict", json={"instances": images[:5].tolist()}).get_json()
    unit = client.post(
        "/predict", json={"instances": (images[:5] / 255.0).tolist(), "scale": "unit"}
    ).get_json()
    np.testing.assert_allclose(
        [p["probabilities"] for p in pixel["predictions"]],
        [p["probabilities"] for p in unit["predictions"]],
        atol=1e-5,
    )


def test_raw_bytes_match_json(client, real_digits):
    images, _ = real_digits
    raw = client.post(
        "/predict", data=images[:20].tobytes(), content_type="application/octet-stream"
    ).get_json()
    js = client.post("/predict", json={"instances": images[:20].tolist()}).get_json()
    assert [p["label"] for p in raw["predictions"]] == [p["label"] for p in js["predictions"]]


def test_model_and_version_selection(client, app):
    from service.nn import MLP, ModelSpec

    store = service_state(app).store
    store.save("other", MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(0)))
    body = client.post("/predict", json={"pixels": BLANK, "model": "other", "version": 1}).get_json()
    assert body["model"] == {"name": "other", "version": 1}
    raw = client.post("/predict?model=other", data=bytes(784), content_type="application/octet-stream")
    assert raw.get_json()["model"] == {"name": "other", "version": 1}
    missing = client.post("/predict", json={"pixels": BLANK, "model": "mnist", "version": 7})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "model_not_found"


def _error(response, status=422):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


@pytest.mark.parametrize(
    "payload,loc,fragment",
    [
        ({"pixels": [0] * 783}, ["pixels"], "exactly 784 numbers, got 783"),
        ({"instances": [BLANK, [0] * 785]}, ["instances", 1], "exactly 784 numbers, got 785"),
        ({"pixels": [0] * 100 + ["7"] + [0] * 683}, ["pixels", 100], 'must be a number, got "7"'),
        ({"pixels": [0] * 5 + [None] + [0] * 778}, ["pixels", 5], "got null"),
        ({"instances": [BLANK, [0] * 3 + [True] + [0] * 780]}, ["instances", 1, 3], "got true"),
        ({"pixels": [0] * 783 + [256]}, ["pixels", 783], "between 0 and 255"),
        ({"pixels": [-1] + [0] * 783}, ["pixels", 0], "between 0 and 255"),
        (
            {"instances": [BLANK, [0] * 9 + [2] + [0] * 774], "scale": "unit"},
            ["instances", 1, 9],
            "between 0 and 1",
        ),
        ({"instances": []}, ["instances"], "at least one image"),
        ({"pixels": "0,0,0"}, ["pixels"], "must be an array"),
        ({"instances": [BLANK, 5]}, ["instances", 1], "got int"),
    ],
)
def test_invalid_pixels_name_field_and_index(client, payload, loc, fragment):
    error = _error(client.post("/predict", json=payload))
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == loc
    assert fragment in error["message"]


@pytest.mark.parametrize("literal,index", [("NaN", 10), ("Infinity", 20), ("-Infinity", 30)])
def test_nan_and_infinity_are_named(client, literal, index):
    values = ["0"] * 784
    values[index] = literal
    body = '{"pixels": [' + ",".join(values) + "]}"
    error = _error(client.post("/predict", data=body, content_type="application/json"))
    assert error["details"][0]["loc"] == ["pixels", index] and "finite" in error["message"]


@pytest.mark.parametrize(
    "payload,fragment",
    [
        ({"pixels": BLANK, "instances": [BLANK]}, "exactly one of"),
        ({}, "exactly one of"),
        ({"pixels": BLANK, "model": "../etc"}, "model"),
        ({"pixels": BLANK, "version": 0}, "version"),
        ({"pixels": BLANK, "scale": "percent"}, "scale"),
        ({"pixels": BLANK, "colour": "red"}, "colour"),
    ],
)
def test_envelope_errors(client, payload, fragment):
    error = _error(client.post("/predict", json=payload))
    assert fragment in json.dumps(error)


def test_malformed_json_and_non_objects(client):
    assert (
        _error(client.post("/predict", data="{nope", content_type="application/json"))["code"]
        == "validation_error"
    )
    assert "JSON object" in _error(client.post("/predict", json=[1, 2]))["message"]


def test_oversize_batch_is_refused(make_client):
    client = make_client(max_batch=3)
    error = _error(client.post("/predict", json={"instances": [BLANK] * 4}))
    assert "4 images; at most 3" in error["message"]
    raw = _error(client.post("/predict", data=bytes(784 * 4), content_type="application/octet-stream"))
    assert "at most 3" in raw["message"]


def test_raw_bytes_of_the_wrong_length(client):
    error = _error(client.post("/predict", data=bytes(785), content_type="application/octet-stream"))
    assert "not a multiple of 784" in error["message"]
    assert (
        "empty"
        in _error(client.post("/predict", data=b"", content_type="application/octet-stream"))["message"]
    )


def test_body_over_the_limit_is_a_json_413(make_client):
    client = make_client(max_body_mb=0.001)
    error = _error(client.post("/predict", data=bytes(784 * 2), content_type="application/octet-stream"), 413)
    assert error["code"] == "request_entity_too_large"
    assert error["message"] == "the body is over 1,048 bytes (BACKPROP_MAX_BODY_MB)"  # as nginx says it
    protocol = client.post("/v2/models/mnist/infer", data=bytes(784 * 2), content_type="application/json")
    assert protocol.status_code == 413 and protocol.get_json() == {"error": error["message"]}


def test_other_content_types_are_a_json_415(client):
    error = _error(client.post("/predict", data="1,2,3", content_type="text/csv"), 415)
    assert "text/csv" in error["message"]


def test_raw_query_parameters_are_validated_and_documented(client):
    error = _error(
        client.post("/predict?version=0", data=bytes(784), content_type="application/octet-stream")
    )
    assert error["details"][0]["loc"] == ["version"]
    assert _error(
        client.post("/predict?colour=red", data=bytes(784), content_type="application/octet-stream")
    )
    params = client.get("/openapi.json").get_json()["paths"]["/predict"]["post"]["parameters"]
    assert {p["name"] for p in params} == {"model", "version", "with_pixels"}
    assert all(p["in"] == "query" for p in params)


def test_with_pixels_each_prediction_gives_the_image_the_model_saw(client, real_digits):
    digit = real_digits[0][0]
    plain = client.post("/predict", json={"pixels": digit.tolist()}).get_json()["predictions"][0]
    assert "pixels" not in plain
    answer = client.post("/predict?with_pixels=true", json={"pixels": digit.tolist()}).get_json()
    assert (
        answer["predictions"][0]["pixels"] == digit.tolist()
        and answer["predictions"][0]["label"] == plain["label"]
    )
    unit = client.post(
        "/predict?with_pixels=1", json={"instances": [[0.5] * 784, [1.0] * 784], "scale": "unit"}
    )
    assert [p["pixels"][0] for p in unit.get_json()["predictions"]] == [128, 255]
    picture = io.BytesIO()
    Image.fromarray(255 - digit.reshape(28, 28).astype(np.uint8)).resize((112, 112)).save(
        picture, format="PNG"
    )
    drawn = client.post(
        "/predict?with_pixels=true", data=picture.getvalue(), content_type="image/png"
    ).get_json()
    seen = np.array(drawn["predictions"][0]["pixels"])
    assert seen.shape == (784,) and seen.max() == 255 and seen.min() == 0  # prepared as MNIST's were
    assert client.post("/predict?with_pixels=maybe", json={"pixels": [0] * 784}).status_code == 422


def test_json_bodies_have_their_query_validated_too_and_filled_in_from_it(client):
    # The fuzzer found ?version=AAA accepted with a JSON body: the documented query held for raw
    # bodies only.
    error = _error(client.post("/predict?version=AAA", json={"pixels": [0] * 784}))
    assert error["details"][0]["loc"] == ["version"]
    assert _error(client.post("/predict?model=a..b", json={"pixels": [0] * 784}))["details"][0]["loc"] == [
        "model"
    ]
    missing = client.post("/predict?model=nothing", json={"pixels": [0] * 784})
    assert missing.status_code == 404  # the query names the model when the body does not
    chosen = client.post("/predict?model=nothing", json={"pixels": [0] * 784, "model": "mnist"})
    assert chosen.status_code == 200 and chosen.get_json()["model"]["name"] == "mnist"  # the body first


def _picture(path, fmt: str) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.open(path).convert("L").save(out, format=fmt, quality=95)
    return out.getvalue()


@pytest.mark.parametrize(("mimetype", "fmt"), [("image/png", "PNG"), ("image/jpeg", "JPEG")])
def test_a_picture_of_a_digit_is_prepared_as_the_cli_prepares_it(client, digit_png, mimetype, fmt):
    from service.images import load_digit

    path, label = digit_png
    response = client.post("/predict?version=1", data=_picture(path, fmt), content_type=mimetype)
    assert response.status_code == 200, response.get_json()
    (prediction,) = response.get_json()["predictions"]
    assert prediction["label"] == label
    same = client.post("/predict", json={"pixels": load_digit(path).tolist()}).get_json()["predictions"][0]
    if fmt == "PNG":  # the same pixels, so the same probabilities
        assert prediction["probabilities"] == pytest.approx(same["probabilities"], abs=1e-6)


def test_a_transparent_drawing_counts_its_background_as_paper(client, digit_png):
    import io

    import numpy as np
    from PIL import Image

    path, label = digit_png
    ink = 255 - np.asarray(Image.open(path).convert("L"))  # ink where the digit is dark
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[..., 3] = ink  # black strokes on a transparent canvas, as a browser's canvas exports them
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    response = client.post("/predict", data=out.getvalue(), content_type="image/png")
    assert response.get_json()["predictions"][0]["label"] == label


def test_pictures_that_cannot_be_read_are_422s_that_say_why(client, make_client, digit_png):
    import io

    from PIL import Image

    path, _ = digit_png
    png = _picture(path, "PNG")
    cases = [
        (b"", "image/png", "body: is empty; send a PNG picture"),
        (b"not a picture", "image/png", "the image/png body cannot be read as PNG"),
        (_picture(path, "JPEG"), "image/png", "cannot be read as PNG"),
        (png[: len(png) // 2], "image/png", "cannot be read as PNG"),
        (png, "image/jpeg", "cannot be read as JPEG"),
    ]
    for body, mimetype, message in cases:
        response = client.post("/predict", data=body, content_type=mimetype)
        said = response.get_json()["error"]["message"]
        assert response.status_code == 422 and message in said, body[:20]
        assert "object at 0x" not in said  # Pillow's name for an in-memory file means nothing here
    # a small file that would decode to 100 million pixels is refused before it is decoded
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000), 1).save(bomb, format="PNG")
    assert len(bomb.getvalue()) < 100_000
    response = client.post("/predict", data=bomb.getvalue(), content_type="image/png")
    message = response.get_json()["error"]["message"]
    assert (
        response.status_code == 422
        and "10000x10000 pixels" in message
        and "BACKPROP_MAX_IMAGE_PIXELS" in message
    )
    small = make_client(max_image_pixels=1000)
    assert small.post("/predict", data=png, content_type="image/png").status_code == 422
    assert client.post("/predict", data=png, content_type="image/gif").status_code == 415
