import numpy as np
import pytest
from pydantic import ValidationError

from service.data import load_dataset
from service.training import TrainingConfig, dataset_split, drift_reference, split_indices, train


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 10**9),
        ("hidden", [100_000]),
        ("hidden", []),
        ("batch_size", 0),
        ("learning_rate", 0),
        ("optimizer", "rmsprop"),
        ("validation_split", 0.9),
        ("weight_init", "xavier"),
        ("members", 0),
        ("members", 5),
        ("unknown", 1),
    ],
)
def test_config_bounds(field, value):
    with pytest.raises(ValidationError) as info:
        TrainingConfig(**{field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_train_on_synthetic_data_reports_all_metrics(tiny_dataset_dir):
    dataset = load_dataset("mnist", tiny_dataset_dir)
    result = train(TrainingConfig(hidden=(32,), epochs=3, batch_size=32), dataset)
    assert len(result.history) == 3
    assert result.metrics["validation_samples"] == 60 and result.metrics["train_samples"] == 540
    assert result.metrics["test_samples"] == 200 and result.metrics["test_accuracy"] > 0.9
    norm = result.network.spec.normalization
    assert 0 < norm.mean < 1 and norm.std > 0


def test_split_indices_reproduce_the_training_split(tiny_dataset_dir):
    dataset = load_dataset("mnist", tiny_dataset_dir)
    config = TrainingConfig(seed=5)
    a = split_indices(config, dataset.train_y)
    b = split_indices(config, dataset.train_y)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.slow
def test_training_lowers_the_loss_on_real_digits(mnist5k_dir):
    dataset = load_dataset("mnist", mnist5k_dir)
    result = train(TrainingConfig(hidden=(64,), epochs=4), dataset)
    losses = [r.loss for r in result.history]
    assert losses == sorted(losses, reverse=True), losses
    assert losses[-1] < 0.5 * losses[0]
    assert result.metrics["validation_accuracy"] > 0.9


@pytest.mark.slow
def test_same_seed_same_data_same_weights_on_real_digits(mnist5k_dir):
    dataset = load_dataset("mnist", mnist5k_dir)
    config = TrainingConfig(hidden=(32,), epochs=2, seed=11)
    a, b = train(config, dataset), train(config, dataset)
    for key in a.network.params:
        np.testing.assert_array_equal(a.network.params[key], b.network.params[key])


def test_the_cli_and_jobs_save_a_version_the_same_way(tiny_dataset_dir, tmp_path):
    # One flow for both: what the data loader noted travels with the model, a bad name fails before
    # any training, and make_default makes the new version the default.
    from service.data import load_dataset
    from service.errors import InvalidModelName
    from service.store import ModelStore
    from service.training import train_and_save

    store = ModelStore(tmp_path / "store")
    dataset = load_dataset("mnist", tiny_dataset_dir)
    dataset.notes.append("a note from the loader")
    config = TrainingConfig(hidden=(8,), epochs=1)
    with pytest.raises(InvalidModelName):
        train_and_save(config, dataset, store, "a..b")
    meta, result = train_and_save(config, dataset, store, "tiny", make_default=True, job="j1")
    assert meta["version"] == 1 and meta["job"] == "j1"
    assert meta["dataset"]["notes"] == ["a note from the loader"] == result.notes
    assert meta["training"] == config.model_dump(mode="json") and len(meta["history"]) == 1
    assert store.default_version("tiny") == 1
    reference = meta["drift_reference"]  # on the test split, or else the validation split
    without_test = load_dataset("mnist", tiny_dataset_dir)
    without_test.test_x = None
    _, held_out = split_indices(config, dataset.train_y)
    assert reference["samples"] == len(dataset.test_x) and abs(sum(reference["labels"]) - 1) < 1e-4
    assert drift_reference(result.network, config, without_test)["samples"] == len(held_out)
    assert 0 < reference["ood_threshold"] <= 1 and reference["ood_share"] == 0.01


def test_corrections_are_oversampled_and_measured_on_their_own(tiny_dataset_dir):
    from service.feedback.dataset import load_training_data
    from service.feedback.store import FeedbackStore

    store = FeedbackStore(tiny_dataset_dir, max_examples=100, per_minute=100)
    for label in range(10):
        store.correct(np.full(784, 25 * label, np.uint8), label, "10.0.0.1")
    data = load_training_data("mnist+feedback", tiny_dataset_dir, store)
    config = TrainingConfig(hidden=(16,), epochs=2, feedback_weight=20)
    own_train, own_val = split_indices(config, data.train_y[:600])
    assert (dataset_split(config, data)[1] == own_val).all()  # MNIST's held-out images as without them
    metrics = train(config, data).metrics
    assert metrics["train_samples"] == len(own_train) + 8 * 20 and metrics["validation_samples"] == len(
        own_val
    )
    assert metrics["corrections_samples"] == 2 and 0 <= metrics["corrections_accuracy"] <= 1
    assert "held-out corrections" in metrics["measured_on"]["corrections_accuracy"]
    assert (
        "corrections_accuracy"
        not in train(TrainingConfig(hidden=(16,), epochs=1), load_dataset("mnist", tiny_dataset_dir)).metrics
    )


def test_fine_tuning_starts_from_the_default_version_and_says_so(tiny_dataset_dir, tmp_path):
    from service.errors import Conflict
    from service.store import ModelStore
    from service.training import train_and_save

    data = load_dataset("mnist", tiny_dataset_dir)
    store = ModelStore(tmp_path / "store")
    tuning = TrainingConfig(
        hidden=(99,), epochs=1, fine_tune=True, learning_rate=1e-9, seed=5, validation_split=0.3
    )
    with pytest.raises(Conflict, match="no default version to fine-tune"):
        train_and_save(tuning, data, store, "m")
    first, _ = train_and_save(TrainingConfig(hidden=(16,), epochs=2), data, store, "m", make_default=True)
    tuned, result = train_and_save(tuning, data, store, "m")
    assert tuned["fine_tuned_from"] == {"model": "m", "version": 1} and first["fine_tuned_from"] is None
    assert tuned["spec"]["hidden"] == [16] and tuned["training"]["hidden"] == [16]
    assert (tuned["training"]["seed"], tuned["training"]["validation_split"]) == (0, 0.1)  # the start's split
    start, _ = store.load("m", 1)
    for key, weights in start.params.items():  # a learning rate of 1e-9: still the starting weights
        assert np.allclose(result.network.params[key], weights, atol=1e-6)
    assert tuned["spec"]["normalization"] == first["spec"]["normalization"]
    fewer = load_dataset("mnist", tiny_dataset_dir)
    fewer.train_x, fewer.train_y = fewer.train_x[:500], fewer.train_y[:500]
    with pytest.raises(Conflict, match="cannot be fine-tuned on this data"):
        train_and_save(tuning, fewer, store, "m")


def test_dropout_smoothing_and_averaging_train_reproducibly_by_seed(tiny_dataset_dir):
    data = load_dataset("mnist", tiny_dataset_dir)
    config = TrainingConfig(hidden=(16,), epochs=2, dropout=0.3, label_smoothing=0.1, weight_average=0.9)
    first, again = train(config, data), train(config, data)
    for key, weights in first.network.params.items():
        assert np.array_equal(weights, again.network.params[key])
    other = train(config.model_copy(update={"seed": 1}), data)
    assert not np.array_equal(other.network.params["W1"], first.network.params["W1"])
    assert first.metrics["held_out_accuracy"] > 0.5  # measured on the averaged weights it keeps
    assert first.history[-1].val_accuracy == first.metrics["validation_accuracy"]


def test_members_train_on_one_split_and_are_saved_as_one_network(tiny_dataset_dir, tmp_path):
    from service.nn import Callback
    from service.store import ModelStore
    from service.training import train_and_save

    class Seen(Callback):
        def __init__(self):
            self.epochs, self.totals, self.records = [], set(), []

        def on_batch_end(self, progress):
            self.epochs.append(progress.epoch)
            self.totals.add(progress.epochs)

        def on_epoch_end(self, record):
            self.records.append(record.epoch)

    data = load_dataset("mnist", tiny_dataset_dir)
    alone = train(TrainingConfig(hidden=(16, 8), epochs=2, seed=3), data)
    seen = Seen()
    store = ModelStore(tmp_path / "store")
    meta, result = train_and_save(
        TrainingConfig(hidden=(16, 8), epochs=2, seed=3, members=3), data, store, "m", callback=seen
    )
    # member 1 is the network trained alone with the seed; the others draw streams of their own
    np.testing.assert_array_equal(result.network.params["W1"][:, :16], alone.network.params["W1"])
    assert not np.array_equal(result.network.params["W1"][:, 16:32], alone.network.params["W1"])
    assert meta["spec"]["hidden"] == [48, 24] and meta["training"]["members"] == 3
    assert [record.epoch for record in result.history] == [1, 2, 3, 4, 5, 6] == seen.records
    assert seen.totals == {6} and seen.epochs == sorted(seen.epochs) and seen.epochs[-1] == 6
    _, validation = dataset_split(TrainingConfig(seed=3), data)
    saved, _ = store.load("m", 1)
    x, labels = saved.normalize(data.train_x[validation]), data.train_y[validation]
    assert meta["metrics"]["validation_accuracy"] == saved.accuracy(x, labels)
    members_loss = np.mean([result.history[i].loss for i in (1, 3, 5)])
    assert meta["metrics"]["loss"] == pytest.approx(members_loss)
    assert "the mean of the 3 members'" in meta["metrics"]["measured_on"]["train_accuracy"]
    store.set_default("m", 1)
    tuned, tuned_result = train_and_save(
        TrainingConfig(epochs=1, members=2, fine_tune=True, learning_rate=1e-9), data, store, "m"
    )  # one network, the saved ensemble's shape, fine-tuned as a whole
    assert tuned["training"]["members"] == 1 and tuned["spec"]["hidden"] == [48, 24]
    assert len(tuned_result.history) == 1


def test_an_ensemble_costs_its_members_times_one_network():
    one = TrainingConfig(hidden=(64,), epochs=3)
    assert one.model_copy(update={"members": 4}).multiply_adds() == 4 * one.multiply_adds()
