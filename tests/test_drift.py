"""The drift reference and the comparison of a window against it: PSI, out-of-distribution share,
and the status with its reasons."""

import numpy as np

from service import drift


def _answers(rng: np.random.Generator, n: int, *, confident: bool = True, label_weights=None) -> np.ndarray:
    """(n, 10) probabilities: a chosen label with a high (or low) top probability."""
    labels = rng.choice(10, size=n, p=label_weights)
    top = rng.uniform(0.95, 1.0, n) if confident else rng.uniform(0.2, 0.6, n)
    probabilities = np.tile(((1 - top) / 9)[:, None], (1, 10))
    probabilities[np.arange(n), labels] = top
    return probabilities


def _counts(probabilities: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    top = probabilities.max(axis=1)
    return {
        "labels": np.bincount(probabilities.argmax(axis=1), minlength=10).astype(float),
        "confidence": np.bincount(drift.buckets(top), minlength=len(drift.BUCKET_NAMES)).astype(float),
        "ood": np.array([(top < threshold).sum()], dtype=float),
    }


def test_the_reference_holds_shares_and_the_one_percent_threshold():
    answers = _answers(np.random.default_rng(0), 5000)
    reference = drift.reference(answers)
    assert reference["samples"] == 5000 and len(reference["labels"]) == 10
    assert abs(sum(reference["labels"]) - 1) < 1e-4 and abs(sum(reference["confidence"]) - 1) < 1e-4
    below = (answers.max(axis=1) < reference["ood_threshold"]).mean()
    assert 0.005 <= below <= 0.011


def test_buckets_take_their_upper_edges():
    top = np.array([0.1, 0.5, 0.5001, 0.9, 0.995, 0.9999, 1.0])
    assert drift.buckets(top).tolist() == [0, 0, 1, 2, 4, 5, 5]


def test_the_same_kind_of_answers_is_ok_and_other_kinds_drift():
    rng = np.random.default_rng(1)
    reference = drift.reference(_answers(rng, 5000))
    same = drift.compare("m", 1, reference, _answers_counts(rng, reference), 3600)
    assert same.status == "ok" and same.labels_psi < 0.02 and same.predictions == 2000
    unsure = drift.compare(
        "m", 1, reference, _counts(_answers(rng, 2000, confident=False), reference["ood_threshold"]), 3600
    )
    assert unsure.status == "drifting" and unsure.ood_share == 1.0
    assert any("out-of-distribution" in reason for reason in unsure.reasons)
    sevens = np.full(10, 0.02)
    sevens[7] = 0.82
    skewed = drift.compare("m", 1, reference, _counts(_answers(rng, 2000, label_weights=sevens), 1e-9), 3600)
    assert skewed.status == "drifting" and skewed.labels_psi >= drift.PSI_DRIFTING
    assert skewed.reasons == [f"PSI of labels {skewed.labels_psi:.3f}, at least {drift.PSI_DRIFTING}"]


def _answers_counts(rng, reference):
    return _counts(_answers(rng, 2000), reference["ood_threshold"])


def test_a_small_window_is_watched_not_judged():
    reference = drift.reference(_answers(np.random.default_rng(2), 1000))
    report = drift.compare("m", 3, reference, _counts(_answers(np.random.default_rng(3), 50), 0.5), 3600)
    assert report.status == "watch" and report.labels_psi is None and report.predictions == 50
    assert report.reasons == [f"50 predictions counted; a status needs {drift.MIN_PREDICTIONS}"]


def test_an_empty_bucket_does_not_make_the_index_infinite():
    assert np.isfinite(drift.psi([1.0, 0.0], np.array([0.0, 10.0])))
