"""``backprop train``, ``gradcheck`` and ``evaluate`` (service/cli/training.py), in process: what
they print for people and as JSON, and the one sentence of each mistake."""

import json
import subprocess
import sys

import numpy as np
import pytest

from service.cli import main
from service.data import load_dataset, write_idx
from service.store import ModelStore


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_train_json_prints_epochs_then_a_summary(tiny_dataset_dir, settings, capsys):
    flags = ["--hidden", "32", "--epochs", "3", "--batch-size", "64", "--model", "tiny", "--json"]
    code = main(["train", "--data-dir", str(tiny_dataset_dir), *flags], settings)
    assert code == 0
    lines = _lines(capsys.readouterr().out)
    assert [line["event"] for line in lines] == ["epoch"] * 3 + ["done"]
    assert set(lines[0]) == {"event", "epoch", "loss", "train_accuracy", "val_accuracy", "seconds"}
    done = lines[-1]
    assert (done["model"], done["version"]) == ("tiny", 1)
    assert done["path"] == str(settings.model_store / "tiny" / "v1.npz")
    assert done["data"] == str(tiny_dataset_dir)
    assert done["test_accuracy"] > 0.9 and done["validation_accuracy"] > 0.9
    meta = json.loads((settings.model_store / "tiny" / "v1.json").read_text())
    assert meta["training"]["hidden"] == [32] and meta["training"]["epochs"] == 3
    assert meta["dataset"]["name"] == "mnist" and len(meta["history"]) == 3


def test_train_without_json_talks_to_people(tiny_dataset_dir, settings, capsys):
    assert (
        main(["train", "--data-dir", str(tiny_dataset_dir), "--hidden", "16", "--epochs", "2"], settings) == 0
    )
    out, err = capsys.readouterr()
    assert "saved mnist v1" in out and "test accuracy" in out
    assert f"training images from {tiny_dataset_dir}" in err and "epoch   1" in err


def test_invalid_hyperparameters_exit_2_naming_the_field(settings, capsys):
    assert main(["train", "--epochs", "0"], settings) == 2
    assert "invalid epochs" in capsys.readouterr().err
    # the refused size is said once, not again as a list left empty
    assert main(["train", "--hidden", "0"], settings) == 2
    assert capsys.readouterr().err == (
        "backprop: invalid hidden.0=0: Input should be greater than or equal to 1\n"
    )


def test_missing_data_says_where_it_looked(settings, capsys):
    assert main(["train", "--data-dir", str(settings.data_dir)], settings) == 1
    err = capsys.readouterr().err
    assert "not found" in err and str(settings.data_dir / "MNIST" / "raw") in err


def test_bad_model_name_fails_before_training(tiny_dataset_dir, settings, capsys):
    assert main(["train", "--data-dir", str(tiny_dataset_dir), "--model", "../x"], settings) == 1
    assert "invalid model name" in capsys.readouterr().err


def test_every_training_field_has_a_flag_that_reaches_the_config():
    from service.cli import build_parser, training_config
    from service.training import TrainingConfig

    parser = build_parser()
    args = parser.parse_args(
        ["train", "--hidden", "8", "4", "--lr", "0.01", "--no-augment", "--augment-shift", "2"]
        + ["--weight-init", "gaussian", "--validation-split", "0.2", "--epochs", "3"]
    )
    config = training_config(args)
    assert config.hidden == (8, 4) and config.learning_rate == 0.01 and config.augment is False
    assert (config.augment_shift, config.weight_init, config.validation_split) == (2, "gaussian", 0.2)
    assert config.epochs == 3 and config.batch_size == TrainingConfig().batch_size  # the rest: defaults
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    for name in TrainingConfig.model_fields:
        assert f"--{name.replace('_', '-')}" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--optimizer", "rmsprop"])  # choices come from the Literal


def test_digits_are_not_fashion(mnist5k_dir, settings, capsys):
    argv = ["train", "--dataset", "fashion-mnist", "--data-dir", str(mnist5k_dir), "--epochs", "1"]
    assert main(argv, settings) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"backprop: {mnist5k_dir} does not hold fashion-mnist: its images look like mnist's"
    )
    assert not settings.model_store.exists() or not list(settings.model_store.rglob("*.npz"))


def test_gradcheck_passes_and_reports_json(capsys):
    assert main(["gradcheck", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines[-1]["passed"] is True and lines[-1]["max_relative_error"] < 1e-6
    assert {line["param"] for line in lines[:-1]} >= {"W1", "b1", "W4", "b4"}


@pytest.mark.slow
def test_console_script_runs_gradcheck():
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "gradcheck"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "PASS" in result.stdout


def test_evaluate_and_predict_use_the_stored_model(tiny_dataset_dir, settings, capsys, tmp_path):
    flags = ["--hidden", "32", "--epochs", "3", "--json", "--set-default"]
    main(["train", "--data-dir", str(tiny_dataset_dir), *flags], settings)
    trained = _lines(capsys.readouterr().out)[-1]
    assert main(["evaluate", "--data-dir", str(tiny_dataset_dir), "--json"], settings) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["split"] == "test" and evaluated["accuracy"] == trained["test_accuracy"]
    assert main(["evaluate", "--data-dir", str(tiny_dataset_dir), "--validation", "--json"], settings) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == trained["validation_accuracy"]

    data = load_dataset("mnist", tiny_dataset_dir)
    np.save(tmp_path / "digits.npy", data.test_x[:20].reshape(20, 28, 28))
    assert main(["predict", str(tmp_path / "digits.npy"), "--json"], settings) == 0
    predictions = _lines(capsys.readouterr().out)
    network, _ = ModelStore(settings.model_store).load()
    expected = network.predict_proba(network.normalize(data.test_x[:20])).argmax(axis=1)
    assert [p["label"] for p in predictions] == expected.tolist()
    assert np.mean(expected == data.test_y[:20]) >= 0.8
    assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in predictions)


def test_evaluate_refuses_a_split_the_model_was_not_trained_with(mnist5k_dir, shipped_store, capsys):
    argv = ["evaluate", "--data-dir", str(mnist5k_dir), "--model-store", str(shipped_store)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("backprop: mnist v1 was trained on 60,000 images of mnist, and ")
    assert "its validation split would include images the model learned" in err


def test_evaluate_recognises_the_data_a_new_model_was_trained_on(
    tiny_dataset_dir, settings, tmp_path, capsys
):
    argv = ["--data-dir", str(tiny_dataset_dir), "--hidden", "16", "--epochs", "1"]
    assert main(["train", *argv], settings) == 0
    other = tmp_path / "other"
    other.mkdir()
    dataset = load_dataset("mnist", tiny_dataset_dir)
    write_idx(other / "train-images-idx3-ubyte", dataset.train_x[::-1].reshape(-1, 28, 28))  # same size
    write_idx(other / "train-labels-idx1-ubyte", dataset.train_y[::-1].astype(np.uint8))
    capsys.readouterr()
    assert main(["evaluate", "--validation", "--data-dir", str(tiny_dataset_dir)], settings) == 0
    assert main(["evaluate", "--validation", "--data-dir", str(other)], settings) == 1
    assert "holds other data (600 images)" in capsys.readouterr().err


def test_train_on_corrections_fine_tunes_and_says_so_in_one_sentence_when_it_cannot(
    tiny_dataset_dir, settings, capsys
):
    from service.feedback.store import FeedbackStore

    plus = ["train", "--data-dir", str(tiny_dataset_dir), "--dataset", "mnist+feedback", "--json"]
    assert main([*plus, "--hidden", "16", "--epochs", "1"], settings) == 1
    assert "no corrections to train on yet" in capsys.readouterr().err
    store = FeedbackStore(tiny_dataset_dir, max_examples=100, per_minute=100)
    for _ in range(10):
        store.correct(np.full(784, 200, np.uint8), 3, "10.0.0.1")
    assert main([*plus, "--fine-tune", "--epochs", "1"], settings) == 1  # nothing to start from yet
    assert "no default version to fine-tune" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(tiny_dataset_dir),
                "--hidden",
                "16",
                "--epochs",
                "2",
                "--set-default",
            ],
            settings,
        )
        == 0
    )
    capsys.readouterr()
    assert main([*plus, "--fine-tune", "--epochs", "1", "--feedback-weight", "20"], settings) == 0
    done = _lines(capsys.readouterr().out)[-1]
    assert (done["model"], done["version"]) == ("mnist", 2)
    meta = json.loads((settings.model_store / "mnist" / "v2.json").read_text())
    assert (
        meta["fine_tuned_from"] == {"model": "mnist", "version": 1}
        and meta["metrics"]["corrections_samples"] == 2
    )
    assert meta["training"]["feedback_weight"] == 20 and meta["spec"]["hidden"] == [16]


def test_a_store_that_cannot_be_written_is_said_before_training(tiny_dataset_dir, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "mnist").write_text("")  # a file where the model's folder goes
    argv = ["train", "--data-dir", str(tiny_dataset_dir), "--epochs", "1", "--model-store"]
    for store, why in (("a-file", "Not a directory"), ("store", "it is a file, not a folder")):
        assert main([*argv, str(tmp_path / store)]) == 1
        out, err = capsys.readouterr()
        assert err == f"backprop: cannot write a model in {tmp_path / store / 'mnist'}: {why}\n"
        assert "epoch" not in out + err  # nothing trained
