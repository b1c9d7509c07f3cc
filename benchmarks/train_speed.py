"""One training epoch of 60,000 images: this engine, plain and augmented, with batches made ahead
by the loader thread or in turn, vs. its matrix products alone vs. PyTorch CPU.

Prints one JSON object. All runs use the default architecture, batch size and optimizer of
``TrainingConfig``, the same images, and run in this one process so the ratios compare like with
like on a noisy machine. The augmented epochs distort images as the shipped default model was
trained (its metadata in model_store/ says how); the others, PyTorch's included, see them as they
are. Besides the epochs it times the optimizer's steps alone and splits one plain engine epoch
into its phases, to show where the time beyond the matrix products goes.

    python -m benchmarks.train_speed [--data-dir DIR] [--dataset mnist] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import asdict

import numpy as np

from benchmarks import REPO, machine
from service.data import load_dataset
from service.nn import MLP, ModelSpec, fit, make_optimizer
from service.seed import seed_files
from service.training import TrainingConfig


def best_times(repeats: int, runs: dict) -> dict[str, float]:
    """Best wall time of each run; rounds interleave the runs, so drift hits all alike."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def default_engine(config: TrainingConfig, seed: int):
    """(rng, network, optimizer) as ``fit`` gets them for the default architecture and optimizer."""
    rng = np.random.default_rng(seed)
    network = MLP.initialize(ModelSpec(hidden=tuple(config.hidden)), rng)
    return rng, network, make_optimizer(config.optimizer, config.learning_rate)


def engine_epoch(x, y, config: TrainingConfig, seed: int, augmentation=None, prefetch: int = 2):
    rng, network, optimizer = default_engine(config, seed)
    x = network.normalize(x)

    def run():
        fit(
            network,
            optimizer,
            x,
            y,
            epochs=1,
            batch_size=config.batch_size,
            rng=rng,
            augmentation=augmentation,
            prefetch=prefetch,
        )

    return run


def matmul_epoch(n: int, config: TrainingConfig, seed: int):
    """Exactly the GEMMs one epoch of backprop needs (no input gradient for the first layer)."""
    rng = np.random.default_rng(seed)
    sizes = [784, *config.hidden, 10]
    weights = [rng.standard_normal((a, b), dtype=np.float32) for a, b in itertools.pairwise(sizes)]
    grads = [np.empty_like(w) for w in weights]
    steps = -(-n // config.batch_size)
    batch = config.batch_size
    acts = [rng.standard_normal((batch, s), dtype=np.float32) for s in sizes]

    def run():
        for _ in range(steps):
            for i, w in enumerate(weights):
                np.matmul(acts[i], w, out=acts[i + 1])
            dout = acts[-1]
            for i in reversed(range(len(weights))):
                np.matmul(acts[i].T, dout, out=grads[i])
                if i:
                    dout = dout @ weights[i].T

    return run


def optimizer_epoch(n: int, config: TrainingConfig, seed: int):
    """The optimizer's steps of one epoch alone, on the default network's parameter shapes."""
    rng, network, optimizer = default_engine(config, seed)
    for grad in network.grads.values():
        grad[...] = rng.standard_normal(grad.shape, dtype=np.float32) * np.float32(1e-3)
    steps = -(-n // config.batch_size)

    def run():
        for _ in range(steps):
            optimizer.step(network.params, network.grads)

    return run


def engine_phases(x, y, config: TrainingConfig, seed: int) -> dict[str, float]:
    """Seconds of one engine epoch spent in each phase of a training step (the work of ``fit``).

    Two epochs run and the second is reported, so buffers and optimizer state already exist.
    """
    rng, network, optimizer = default_engine(config, seed)
    x = network.normalize(x)
    batch = np.empty((config.batch_size, x.shape[1]), dtype=network.dtype)
    clock = time.perf_counter
    for _ in range(2):
        phases = dict.fromkeys(("gather", "forward_and_loss", "backward", "optimizer"), 0.0)
        order = rng.permutation(len(y))
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            t0 = clock()
            xb = np.take(x, idx, axis=0, out=batch[: len(idx)])
            t1 = clock()
            network.loss(xb, y[idx])
            t2 = clock()
            network.backward()
            t3 = clock()
            optimizer.step(network.params, network.grads)
            t4 = clock()
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                phases[name] += seconds
    return phases


def torch_epoch(x, y, config: TrainingConfig, seed: int):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    sizes = [784, *config.hidden, 10]
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizers = {
        "adam": lambda p: torch.optim.Adam(p, lr=config.learning_rate),
        "momentum": lambda p: torch.optim.SGD(p, lr=config.learning_rate, momentum=config.momentum),
        "sgd": lambda p: torch.optim.SGD(p, lr=config.learning_rate),
    }
    optimizer = optimizers[config.optimizer](model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    xt = torch.from_numpy(x.astype(np.float32) / 255.0)
    yt = torch.from_numpy(y.astype(np.int64))

    def run():
        order = torch.randperm(len(yt))
        for start in range(0, len(yt), config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()

    return run, torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BACKPROP_DATA_DIR", "./data"))
    parser.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="override the default batch size")
    parser.add_argument("--hidden", type=int, nargs="+", help="override the default hidden sizes")
    parser.add_argument(
        "--optimizer", choices=["sgd", "momentum", "adam"], help="override the default optimizer"
    )
    parser.add_argument("--lr", type=float, help="override the default learning rate")
    args = parser.parse_args()

    overrides = {
        "batch_size": args.batch_size,
        "hidden": tuple(args.hidden or ()),
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
    }
    config = TrainingConfig().model_copy(update={k: v for k, v in overrides.items() if v})
    data = load_dataset(args.dataset, args.data_dir)
    x, y = data.train_x, data.train_y
    n = len(y)
    (sidecar,) = [p for p in seed_files(REPO / "model_store") if p.suffix == ".json"]
    shipped = json.loads((REPO / "model_store" / sidecar).read_text())
    augmentation = TrainingConfig(**shipped["training"]).augmentation
    result: dict = {
        "benchmark": "train_speed",
        "dataset": args.dataset,
        "augmentation": asdict(augmentation),
        "images": n,
        "hidden": list(config.hidden),
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "repeats": args.repeats,
        "machine": machine(),
    }
    runs = {
        "engine": engine_epoch(x, y, config, 0),
        "engine_in_turn": engine_epoch(x, y, config, 0, prefetch=0),
        "engine_augmented": engine_epoch(x, y, config, 0, augmentation),
        "engine_augmented_in_turn": engine_epoch(x, y, config, 0, augmentation, prefetch=0),
        "matmul_only": matmul_epoch(n, config, 0),
        "optimizer_only": optimizer_epoch(n, config, 0),
    }
    try:
        runs["torch"], torch_version = torch_epoch(x, y, config, 0)
    except ImportError:
        torch_version = None
    # Before any PyTorch run: its OpenMP threads keep spinning for a while after each one.
    phases = result["engine_phases_seconds"] = engine_phases(x, y, config, 0)
    best = best_times(args.repeats, runs)
    for name, seconds in best.items():
        result[name] = {"epoch_seconds": seconds, "images_per_second": n / seconds}
    result["engine_time_over_matmul_time"] = best["engine"] / best["matmul_only"]
    result["augmented_time_over_plain_time"] = best["engine_augmented"] / best["engine"]
    result["augmented_time_over_matmul_time"] = best["engine_augmented"] / best["matmul_only"]
    result["loader_speedup"] = {
        "plain": best["engine_in_turn"] / best["engine"],
        "augmented": best["engine_augmented_in_turn"] / best["engine_augmented"],
    }
    # The products, the optimizer's update and the batch gather are work every step must do.
    # Run one after another, as NumPy's single-threaded elementwise kernels run, their sum bounds
    # this engine's epoch from below, whatever else gets faster.
    floor = result["serial_floor_seconds"] = best["matmul_only"] + best["optimizer_only"] + phases["gather"]
    result["serial_floor_over_matmul_time"] = floor / best["matmul_only"]
    if torch_version is None:
        result["torch"] = None
    else:
        result["torch"]["version"] = torch_version
        result["engine_throughput_over_torch"] = best["torch"] / best["engine"]
        result["serial_floor_throughput_over_torch"] = best["torch"] / floor
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
