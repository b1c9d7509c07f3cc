"""Shared fixtures: 500 real digits inside the repository, the 5,000 and the 60,000 of ../shared for
the tests marked real_data, small synthetic IDX folders, settings and apps from the factory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from service.data import write_idx
from service.seed import copy_seed, seed_files
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789"  # BACKPROP_API_TOKEN must be at least 16 characters
DIGITS = REPO / "tests" / "fixtures" / "digits"
SYSTEM = REPO / "tests" / "system"


pytest_plugins = ["tests.robustness"]  # the summary of faults, fuzzing and load, after the run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tiers by what a test needs, without anyone remembering to mark it: the digits beside the
    # repository (real_data); processes, containers or browsers (slow): everything under
    # tests/system/, and whatever starts a redis-server.
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if {"mnist5k_dir", "mnist_dir"} & fixtures:
            item.add_marker(pytest.mark.real_data)
        if "redis_url" in fixtures or Path(item.path).is_relative_to(SYSTEM):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_backprop_environment(monkeypatch):
    """Tests build their own settings: the developer's BACKPROP_* variables stay out of them (the
    BACKPROP_TEST_* ones, which point the tests at data, excepted)."""
    for name in list(os.environ):
        if (name.startswith("BACKPROP_") and not name.startswith("BACKPROP_TEST_")) or name in (
            "PROMETHEUS_MULTIPROC_DIR",
            "GUNICORN_CMD_ARGS",
        ):
            monkeypatch.delenv(name)


def _shared_data(folder: str, variable: str) -> Path:
    for candidate in (os.environ.get(variable), REPO.parent / "shared" / "data" / folder):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    pytest.fail(f"{folder} not found: set {variable} to the folder holding its IDX files")


@pytest.fixture(scope="session")
def mnist5k_dir() -> Path:
    """The 5,000 real MNIST digits shipped beside the repository (../shared/data/mnist-5k)."""
    return _shared_data("mnist-5k", "BACKPROP_TEST_MNIST5K")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """MNIST's 60,000 training digits beside the repository (../shared/data/mnist)."""
    return _shared_data("mnist", "BACKPROP_TEST_MNIST")


def make_digits(n: int, rng: np.random.Generator, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic 28x28 images: each class lights up its own block of pixels."""
    labels = np.arange(n) % classes
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for cls in range(classes):
        rows = slice(2 + 2 * cls, 4 + 2 * cls)
        images[labels == cls, rows, 4:24] = 230
    return images, labels.astype(np.uint8)


@pytest.fixture
def tiny_dataset_dir(tmp_path: Path) -> Path:
    """A plain folder of gzipped IDX files: 600 training and 200 test synthetic digits."""
    return write_tiny_dataset(tmp_path / "tiny")


def write_tiny_dataset(folder: Path) -> Path:
    """``tiny_dataset_dir``'s files, in ``folder`` (made here)."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    train_x, train_y = make_digits(600, rng)
    test_x, test_y = make_digits(200, rng)
    write_idx(folder / "train-images-idx3-ubyte.gz", train_x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model_store=tmp_path / "store", data_dir=tmp_path / "data")


def shipped_files() -> list[Path]:
    """The shipped seed model's files, relative to ``model_store/`` (``service.seed.seed_files``)."""
    return seed_files(REPO / "model_store")


def copy_tracked_files(target: Path) -> Path:
    """The files git tracks in this repository, as they are in the work tree, copied to ``target``:
    what a fresh clone of this tree would hold."""
    import shutil
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def copy_shipped_store(target: Path) -> Path:
    """A private model store holding exactly the shipped seed."""
    return copy_seed(REPO / "model_store", target)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped model store (tests may change it)."""
    return copy_shipped_store(tmp_path / "model_store")


@pytest.fixture(scope="session")
def shipped_store(tmp_path_factory) -> Path:
    """The shipped model store, copied once, for tests that only read it."""
    return copy_shipped_store(tmp_path_factory.mktemp("shipped") / "model_store")


@pytest.fixture
def app_settings(store_dir: Path, tmp_path: Path, tiny_dataset_dir: Path) -> Settings:
    return Settings(
        model_store=store_dir,
        data_dir=tiny_dataset_dir,
        state_dir=tmp_path / "var",
        default_refresh_seconds=0,
    )


@pytest.fixture
def app(app_settings: Settings):
    from service import create_app

    return create_app(app_settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    """A data folder, inside the repository, of 500 real digits (tests/fixtures/digits/README.md)."""
    return DIGITS


@pytest.fixture(scope="session")
def real_digits(digits_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """500 digits the shipped model was trained without (from its validation split of MNIST)."""
    from service.data import load_dataset

    dataset = load_dataset("mnist", digits_dir)
    return dataset.train_x, dataset.train_y


@pytest.fixture
def make_client(app_settings: Settings):
    """A test client of an app whose settings differ from ``app_settings`` by ``overrides``."""
    from service import create_app

    def build(**overrides):
        return create_app(Settings.model_validate({**app_settings.model_dump(), **overrides})).test_client()

    return build


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path):
    """A private redis-server (Debian's, installed by scripts/test) on a free port."""
    import shutil
    import subprocess
    import time

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: run ./scripts/test, which installs it")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def free_redis_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def digit_png(tmp_path: Path, real_digits) -> tuple[Path, int]:
    """A held-out digit drawn the way people do: dark ink on white, large, off-centre, as PNG."""
    from PIL import Image

    images, labels = real_digits
    digit = Image.fromarray(images[7].reshape(28, 28)).resize((150, 150), Image.BILINEAR)
    canvas = np.full((300, 260), 255, dtype=np.uint8)
    canvas[20:170, 90:240] = 255 - np.asarray(digit)
    path = tmp_path / "digit.png"
    Image.fromarray(canvas).save(path)
    return path, int(labels[7])


@pytest.fixture
def served(app):
    """The app served over HTTP on a loopback port, in a thread, for the test's length:
    "127.0.0.1:PORT" (tritonclient's form; prefix http:// for a URL)."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()  # the listening socket too, not only the loop
