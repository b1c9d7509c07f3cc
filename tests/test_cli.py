import json
import os
import signal
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
    code = main(
        [
            "train",
            "--data-dir",
            str(tiny_dataset_dir),
            "--hidden",
            "32",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--model",
            "tiny",
            "--json",
        ],
        settings,
    )
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


def test_missing_data_says_where_it_looked(settings, capsys):
    assert main(["train", "--data-dir", str(settings.data_dir)], settings) == 1
    err = capsys.readouterr().err
    assert "not found" in err and str(settings.data_dir / "MNIST" / "raw") in err


def test_bad_model_name_fails_before_training(tiny_dataset_dir, settings, capsys):
    assert main(["train", "--data-dir", str(tiny_dataset_dir), "--model", "../x"], settings) == 1
    assert "invalid model name" in capsys.readouterr().err


def test_gradcheck_passes_and_reports_json(capsys):
    assert main(["gradcheck", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines[-1]["passed"] is True and lines[-1]["max_relative_error"] < 1e-6
    assert {line["param"] for line in lines[:-1]} >= {"W1", "b1", "W4", "b4"}


def test_evaluate_and_predict_use_the_stored_model(tiny_dataset_dir, settings, capsys, tmp_path):
    main(
        [
            "train",
            "--data-dir",
            str(tiny_dataset_dir),
            "--hidden",
            "32",
            "--epochs",
            "3",
            "--json",
            "--set-default",
        ],
        settings,
    )
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


def test_predict_rejects_wrong_sizes(tiny_dataset_dir, settings, capsys, tmp_path):
    main(["train", "--data-dir", str(tiny_dataset_dir), "--hidden", "8", "--epochs", "1", "--json"], settings)
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", np.zeros((2, 100)))
    assert main(["predict", str(tmp_path / "bad.npy")], settings) == 1
    assert "expected 784 pixels" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs_gradcheck():
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "gradcheck"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "PASS" in result.stdout


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


def _backprop(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        **kwargs,
    )


def test_version():
    from service import __version__

    result = _backprop("--version")
    assert result.returncode == 0 and result.stdout == f"backprop {__version__}\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_training_says_nothing_was_saved(tmp_path, signum):
    from tests.conftest import make_digits

    data = tmp_path / "data"
    data.mkdir()
    images, labels = make_digits(3000, np.random.default_rng(0))
    write_idx(data / "train-images-idx3-ubyte", images)
    write_idx(data / "train-labels-idx1-ubyte", labels)
    store = tmp_path / "store"
    argv = ["train", "--data-dir", str(data), "--model-store", str(store), "--epochs", "500", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a suite started in the background inherits SIGINT ignored, and Python
        # then never turns it into KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert '"event": "epoch"' in proc.stdout.readline()  # training, not loading
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert err.strip() == "backprop: stopped; nothing saved"
    assert not list(store.rglob("*.npz"))


def test_a_service_that_is_down_is_one_sentence(tmp_path, real_digits):
    from tests.conftest import free_port

    np.save(tmp_path / "one.npy", real_digits[0][:1])
    url = f"http://127.0.0.1:{free_port()}"
    result = _backprop("predict", str(tmp_path / "one.npy"), "--url", url)
    assert result.returncode == 1
    assert (
        result.stderr == f"backprop: cannot reach {url} (nothing answers there): is backprop serve running?\n"
    )


def test_a_bad_variable_is_named_with_its_value():
    result = _backprop("serve", env={**os.environ, "BACKPROP_PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.startswith("backprop: invalid BACKPROP_PORT='abc': Input should be a valid integer")


def test_a_redis_url_without_the_redis_package_stops_at_start_with_the_install_command():
    code = "import sys; sys.modules['redis'] = None; from service.cli import main; sys.exit(main())"
    for command in ("serve", "worker"):
        result = subprocess.run(
            [sys.executable, "-c", code, command],
            env={**os.environ, "BACKPROP_REDIS_URL": "redis://127.0.0.1:1/0"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert result.stderr == (
            "backprop: invalid BACKPROP_REDIS_URL='redis://127.0.0.1:1/0': the redis package is not "
            "installed; install it with: python -m pip install 'backprop-service[redis]'\n"
        )


def test_digits_are_not_fashion(mnist5k_dir, settings, capsys):
    argv = ["train", "--dataset", "fashion-mnist", "--data-dir", str(mnist5k_dir), "--epochs", "1"]
    assert main(argv, settings) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"backprop: {mnist5k_dir} does not hold fashion-mnist: its images look like mnist's"
    )
    assert not settings.model_store.exists() or not list(settings.model_store.rglob("*.npz"))


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
