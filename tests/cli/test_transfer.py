"""``backprop push`` and ``backprop export``: against a served app over real HTTP, and the local
store; every mistake a person can make is one sentence."""

from __future__ import annotations

import pytest

from service.api.state import service_state
from service.cli import main
from service.repository import TEXT_MAX_LENGTH
from tests.conftest import TOKEN
from tests.model_files import WIDE, good_model

# As long as a description may be, in 4-byte characters: more than the query string may carry, so
# push sends it in a multipart metadata part.
LONGEST = WIDE * TEXT_MAX_LENGTH


@pytest.fixture
def app_settings(app_settings):
    from pydantic import SecretStr

    return app_settings.model_copy(update={"api_token": SecretStr(TOKEN)})


@pytest.fixture
def url(served):
    return f"http://{served}"


def test_push_then_export_moves_the_same_bytes(url, app, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BACKPROP_API_TOKEN", TOKEN)
    model = tmp_path / "model.npz"
    model.write_bytes(good_model(seed=5))
    argv = [
        "push",
        str(model),
        "--model",
        "digits",
        "--url",
        url,
        "--description",
        LONGEST,
        "--make-default",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == (
        f"pushed {model} as digits v1, now the default: {url}/models/digits/versions/1"
    )
    meta = service_state(app).store.metadata("digits", 1)
    assert meta["source"] == "upload" and meta["description"] == LONGEST
    back = tmp_path / "back.npz"
    assert main(["export", "digits", "--npz", str(back), "--url", url]) == 0
    assert back.read_bytes() == model.read_bytes()
    assert (
        main(["export", "digits:1", "--npz", str(back), "--model-store", str(service_state(app).store.root)])
        == 0
    )
    assert back.read_bytes() == model.read_bytes()


def test_mistakes_are_one_sentence(url, tmp_path, capsys, monkeypatch, shipped_store):
    def said(*argv: str) -> str:
        assert main(list(argv)) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "cannot read" in said("push", str(tmp_path / "none.npz"), "--model", "x", "--url", url)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert "Bearer" in said("push", str(bad), "--model", "x", "--url", url)
    monkeypatch.setenv("BACKPROP_API_TOKEN", TOKEN)
    assert "the uploaded file: not a readable .npz" in said("push", str(bad), "--model", "x", "--url", url)
    assert "cannot reach" in said("push", str(bad), "--model", "x", "--url", "http://127.0.0.1:9")
    assert "--onnx FILE, --npz FILE" in said("export", "mnist", "--model-store", str(shipped_store))
    assert "NAME:VERSION" in said("export", "mnist:one", "--npz", "x", "--model-store", str(shipped_store))
    assert "no model named" in said("export", "nothing", "--npz", "x", "--model-store", str(shipped_store))
    assert "cannot write" in said(
        "export", "mnist", "--npz", str(tmp_path / "no" / "x.npz"), "--model-store", str(shipped_store)
    )
