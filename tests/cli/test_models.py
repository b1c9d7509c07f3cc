"""``backprop predict`` and ``backprop explain`` (service/cli/models.py) on stored models, in process."""

import json

import numpy as np

from service.cli import main
from service.store import ModelStore


def test_predict_rejects_wrong_sizes(tiny_dataset_dir, settings, capsys, tmp_path):
    main(["train", "--data-dir", str(tiny_dataset_dir), "--hidden", "8", "--epochs", "1", "--json"], settings)
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", np.zeros((2, 100)))
    assert main(["predict", str(tmp_path / "bad.npy")], settings) == 1
    assert "expected 784 pixels" in capsys.readouterr().err


def test_predict_says_which_image_and_which_label(tmp_path, real_digits, shipped_store, capsys):
    images, labels = real_digits
    np.save(tmp_path / "one.npy", images[:1])
    np.save(tmp_path / "two.npy", images[[0, 300]])
    assert main(["predict", str(tmp_path / "one.npy"), "--model-store", str(shipped_store)]) == 0
    network, _ = ModelStore(shipped_store).load()
    sure = network.predict_proba(network.normalize(images[:1]))[0, labels[0]]
    assert capsys.readouterr().out == f"label {labels[0]} ({sure:.1%}), by mnist v1\n"
    assert main(["predict", str(tmp_path / "two.npy"), "--model-store", str(shipped_store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"image 0: label {labels[0]} (") and out[1].startswith(
        f"image 1: label {labels[300]} ("
    )


def test_explain_prints_and_draws_why_the_shipped_model_said_what_it_said(
    real_digits, capsys, tmp_path, shipped_store
):
    import xml.etree.ElementTree as ET

    from service.settings import Settings

    images, labels = real_digits
    np.save(tmp_path / "two.npy", images[[0, 300]])
    argv = ["explain", str(tmp_path / "two.npy"), "--model-store", str(shipped_store)]
    assert main([*argv, "--json", "--svg", str(tmp_path / "map.svg")], Settings()) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == labels[[0, 300]].tolist()
    for line in lines:
        change, total = line["score_change"], sum(line["attributions"])
        assert len(line["attributions"]) == 784 and abs(total - change) <= 0.05 * abs(change)
    for i in (0, 1):
        assert ET.parse(tmp_path / f"map-{i}.svg").getroot().tag.endswith("svg")
    assert main([*argv, "--target", "3", "--method", "smoothgrad", "--samples", "4"], Settings()) == 0
    out = capsys.readouterr().out
    assert out.count("why class 3, by smoothgrad") == 2
    # the options are ExplainOptions' (the API's): their bounds, said in one sentence
    assert main([*argv, "--steps", "0"], Settings()) == 2
    assert "invalid steps=0" in capsys.readouterr().err
    assert main([*argv, "--score", "log_probability", "--noise", "0.3"], Settings()) == 0


def test_pixels_that_are_no_pixels_are_said_before_any_model_or_service_is_asked(tmp_path, capsys):
    images = tmp_path / "nan.npy"
    np.save(images, np.full((1, 784), np.nan))
    for where in (["--model-store", str(tmp_path / "nothing")], ["--url", "http://127.0.0.1:9"]):
        assert main(["predict", str(images), *where]) == 1
        said = f"backprop: {images}: image 0, pixel 0 is nan; pixels are 0-255 (or 0-1 throughout)\n"
        assert capsys.readouterr().err == said


def test_heat_maps_that_cannot_be_written_are_said_before_anything_is_explained(
    tmp_path, real_digits, shipped_store, capsys
):
    np.save(tmp_path / "one.npy", real_digits[0][:1])
    (tmp_path / "a-file").write_text("")
    argv = ["explain", str(tmp_path / "one.npy"), "--model-store", str(shipped_store), "--svg"]
    for svg, why in (("missing/map.svg", "No such file or directory"), ("a-file/map.svg", "Not a directory")):
        assert main([*argv, str(tmp_path / svg)]) == 1
        out, err = capsys.readouterr()
        assert err.startswith(f"backprop: cannot write heat maps in {(tmp_path / svg).parent}: {why}")
        assert out == "" and not (tmp_path / "missing").exists()
