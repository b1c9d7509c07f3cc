"""The ``backprop`` command as a process (service/cli/__init__.py): its version, its settings
refused in one sentence, a stop by signal, a service that does not answer."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from service.data import write_idx


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
