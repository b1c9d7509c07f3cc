import threading

import numpy as np
import pytest

from service.errors import TrainingCancelled
from service.nn import MLP, Callback, ModelSpec, fit, make_optimizer
from service.nn.augment import Augmentation
from service.nn.loader import Prefetcher
from service.nn.trainer import Progress
from tests.conftest import make_digits


def _setup(seed: int):
    data_rng = np.random.default_rng(0)
    images, labels = make_digits(300, data_rng)
    network = MLP.initialize(ModelSpec(hidden=(32,)), np.random.default_rng(seed))
    x = network.normalize(images.reshape(300, -1))
    return network, x, labels.astype(np.int64)


def _train(seed: int, **kwargs):
    network, x, y = _setup(seed)
    history = fit(
        network,
        make_optimizer("adam", 1e-2),
        x,
        y,
        epochs=3,
        batch_size=32,
        rng=np.random.default_rng(seed),
        **kwargs,
    )
    return network, history


def test_same_seed_same_data_gives_identical_weights():
    a, _ = _train(1, augmentation=Augmentation(shift=1))
    b, _ = _train(1, augmentation=Augmentation(shift=1))
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])


@pytest.mark.parametrize("augmentation", [None, Augmentation(shift=2, rotate=10, elastic_alpha=20)])
def test_batches_made_ahead_in_a_thread_give_the_same_weights_as_made_in_turn(augmentation):
    ahead, _ = _train(4, augmentation=augmentation, prefetch=3)
    again, _ = _train(4, augmentation=augmentation, prefetch=3)
    in_turn, _ = _train(4, augmentation=augmentation, prefetch=0)
    for key in ahead.params:
        np.testing.assert_array_equal(ahead.params[key], again.params[key])
        # The same batches, but arrays allocated elsewhere: SIMD loops may round the last bit apart.
        np.testing.assert_allclose(ahead.params[key], in_turn.params[key], rtol=1e-4, atol=1e-5)


def test_the_loader_hands_its_error_to_training_and_stops_when_training_stops():
    def failing():
        yield np.zeros((2, 784), np.float32), np.zeros(2, np.int64)
        raise RuntimeError("disk gone")

    with Prefetcher(failing(), 2) as loader:
        next(loader)
        with pytest.raises(RuntimeError, match="disk gone"):
            next(loader)

    produced = []

    def endless():
        while True:
            produced.append(1)
            yield np.zeros((2, 784), np.float32), np.zeros(2, np.int64)

    with Prefetcher(endless(), 2) as loader:
        next(loader)
    count = len(produced)
    assert count <= 4  # one taken, two queued, one waiting to be put
    assert len(produced) == count and not any(t.name == "batch-loader" for t in threading.enumerate())


def test_a_different_seed_gives_different_weights():
    a, _ = _train(1)
    b, _ = _train(2)
    assert not np.array_equal(a.params["W1"], b.params["W1"])


def test_history_has_one_record_per_epoch_and_learns():
    network, x, y = _setup(3)
    history = fit(
        network,
        make_optimizer("adam", 1e-2),
        x,
        y,
        epochs=4,
        batch_size=50,
        rng=np.random.default_rng(3),
        validation=(x[:100], y[:100]),
    )
    assert [r.epoch for r in history] == [1, 2, 3, 4]
    assert history[-1].loss < history[0].loss
    assert history[-1].val_accuracy > 0.9
    assert all(r.seconds > 0 and 0 <= r.train_accuracy <= 1 for r in history)


class _StopAfter(Callback):
    def __init__(self, batches: int) -> None:
        self.seen: list[Progress] = []
        self.batches = batches

    def on_batch_end(self, progress: Progress) -> None:
        self.seen.append(progress)
        if len(self.seen) == self.batches:
            raise TrainingCancelled("stop")


def test_a_callback_cancels_between_batches():
    network, x, y = _setup(4)
    callback = _StopAfter(5)
    with pytest.raises(TrainingCancelled):
        fit(
            network,
            make_optimizer("sgd", 0.1),
            x,
            y,
            epochs=3,
            batch_size=100,
            rng=np.random.default_rng(0),
            callback=callback,
        )
    assert [(p.epoch, p.step) for p in callback.seen] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    assert callback.seen[-1].percent == pytest.approx(100 * 5 / 9)


def test_a_diverging_run_stops_with_the_epoch_and_step():
    from service.errors import TrainingDiverged

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 20)) * 50
    y = rng.integers(0, 3, size=64)
    network = MLP.initialize(ModelSpec(input_size=20, hidden=(32,), num_classes=3), rng)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+") as caught:
        fit(network, make_optimizer("sgd", 1e6), x, y, epochs=5, batch_size=16, rng=rng)
    assert caught.value.epoch == 1
