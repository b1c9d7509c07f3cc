"""The process that warps training images, as real processes: it leaves when its trainer is
killed, and it needs no room in /dev/shm (a container's is 64 MB unless sized)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="forks on Linux only")]

ENDLESS = """
import sys, time
import numpy as np
from service.nn.loader import BatchProcess

def endless():
    while True:
        yield np.ones((256, 784), np.float32), np.zeros(256, np.int64)

loader = BatchProcess(endless(), depth=3, batch_size=256, features=784, dtype=np.float32,
                      label_dtype=np.int64, rng=np.random.default_rng(0))
with loader:
    next(loader)
    print(loader._pid, flush=True)
    time.sleep(600)
"""

TRAIN = """
import logging
import numpy as np
from service.nn import MLP, ModelSpec, fit, make_optimizer
from service.nn.augment import Augmentation

logging.basicConfig(level=logging.INFO, format="%(message)s")
rng = np.random.default_rng(0)
x, y = rng.random((2048, 784), dtype=np.float32), rng.integers(0, 10, 2048)
network = MLP.initialize(ModelSpec(hidden=(16,)), rng)
warps = Augmentation(shift=2, rotate=10, elastic_alpha=30, elastic_sigma=5)
fit(network, make_optimizer("adam", 1e-3), x, y, epochs=2, batch_size=1024, rng=rng, augmentation=warps)
print("trained", flush=True)
"""


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie whose new parent has not reaped it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_warping_process_leaves_when_its_trainer_is_killed():
    trainer = subprocess.Popen([sys.executable, "-c", ENDLESS], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        child = int(trainer.stdout.readline())
        assert not _gone(child)
        trainer.kill()
        trainer.wait(timeout=10)
        deadline = time.monotonic() + 5
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child)
    finally:
        trainer.kill()
        trainer.wait()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="mounts a tmpfs: root")
def test_training_warps_in_its_process_with_a_tiny_dev_shm():
    """A 64 KB /dev/shm (a mount namespace of this test's own), and a ring of three batches of 3 MB."""
    script = f"mount -t tmpfs -o size=64k tmpfs /dev/shm && exec {sys.executable} -c '{TRAIN}'"
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "warping training images in process" in done.stderr
    assert "9.2 MB of anonymous shared memory" in done.stderr
    assert done.stdout.strip() == "trained"
