"""Downloading against a local HTTP server: checksums are enforced, mirrors are tried in turn."""

import gzip
import hashlib
import sys
import threading
import types
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from service.data import catalogue, dataset_info, load_dataset, write_idx
from service.data.download import download_dataset
from service.errors import DownloadError


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server over a folder of gzipped IDX files; yields (base_url, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(30, dtype=np.uint8) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    # shutdown() waits for the loop's next poll: half a second a test at the default interval
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", folder
    server.shutdown()
    server.server_close()


def _info_for(folder):
    """mnist's description, with the checksums of the files our server holds."""
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return replace(dataset_info("mnist"), md5=md5)


def test_download_into_torchvision_layout_then_load(mirror, tmp_path):
    url, folder = mirror
    root = tmp_path / "data"
    raw = download_dataset(_info_for(folder), root, mirrors=(url,))
    assert raw == root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(p.name for p in folder.iterdir())
    data = load_dataset("mnist", root)
    assert data.train_x.shape == (30, 784) and data.test_x.shape == (10, 784)


def test_bad_checksum_is_refused_and_leaves_nothing(mirror, tmp_path):
    url, folder = mirror
    info = _info_for(folder)
    info = replace(info, md5={**info.md5, "train-labels-idx1-ubyte.gz": "0" * 32})
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="md5 .* does not match the published 0000"):
        download_dataset(info, root, mirrors=(url,))
    leftovers = [p.name for p in (root / "MNIST" / "raw").iterdir()]
    assert "train-labels-idx1-ubyte.gz" not in leftovers
    assert not [name for name in leftovers if name.endswith(".part")]


def test_a_failing_mirror_falls_through_to_the_next(mirror, tmp_path):
    url, folder = mirror
    dead = "http://127.0.0.1:9/"  # discard port: connection refused
    download_dataset(_info_for(folder), tmp_path / "data", mirrors=(dead, url + "missing/", url))
    assert (tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_every_mirror_failing_names_each_failure(tmp_path):
    with pytest.raises(DownloadError) as info:
        download_dataset(dataset_info("mnist"), tmp_path, mirrors=("http://127.0.0.1:9/",))
    assert "train-images-idx3-ubyte.gz" in str(info.value) and "127.0.0.1:9" in str(info.value)


def test_files_already_present_and_valid_are_not_fetched_again(mirror, tmp_path):
    url, folder = mirror
    info = _info_for(folder)
    download_dataset(info, tmp_path, mirrors=(url,))
    # Nothing listens here: a second download must not need the network.
    download_dataset(info, tmp_path, mirrors=("http://127.0.0.1:9/",))


def test_load_dataset_downloads_only_when_asked(mirror, tmp_path, monkeypatch):
    url, folder = mirror
    monkeypatch.setitem(catalogue.DATASETS, "mnist", _info_for(folder))
    with pytest.raises(Exception, match="not found"):
        load_dataset("mnist", tmp_path)
    data = load_dataset("mnist", tmp_path, download=True, mirrors=(url,))
    assert len(data.train_y) == 30
    with gzip.open(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz") as labels:
        assert labels.read(4) == b"\0\0\x08\x01"


def _fake_torchvision(monkeypatch, behaviour):
    calls = []

    class MNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            behaviour(root)

    package = types.ModuleType("torchvision")
    package.datasets = types.SimpleNamespace(MNIST=MNIST)
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", package.datasets)
    return calls


def test_torchvision_downloads_when_installed_and_no_mirror_is_forced(mirror, tmp_path, monkeypatch):
    _, folder = mirror

    def fetch(root):
        raw = tmp_path / "data" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for p in folder.iterdir():
            (raw / p.name).write_bytes(p.read_bytes())

    calls = _fake_torchvision(monkeypatch, fetch)
    assert download_dataset(dataset_info("mnist"), tmp_path / "data") == tmp_path / "data" / "MNIST" / "raw"
    assert calls == [(str(tmp_path / "data"), True, True)]


def test_a_failing_torchvision_falls_back_to_the_mirrors(mirror, tmp_path, monkeypatch):
    url, folder = mirror

    def fail(root):
        raise RuntimeError("HTTP Error 503")

    calls = _fake_torchvision(monkeypatch, fail)
    info = replace(_info_for(folder), mirrors=(url,))
    download_dataset(info, tmp_path)
    assert calls and (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
