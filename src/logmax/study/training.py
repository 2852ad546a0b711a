"""Seed 000/003, measured: the same small network trained with each head/loss pairing.

Data: scikit-learn's ``load_digits`` (1797 images of 8x8 pixels, 10 classes; it ships inside
scikit-learn, nothing is downloaded), pixels scaled to [0, 1], a fixed stratified split.
Network: ``Linear(64, hidden) -> ReLU -> Linear(hidden, 10) -> head``, trained by minibatch SGD
with momentum. For a given seed every pairing starts from the same weights and sees the batches in
the same order, so the pairings differ only in their head and loss.

Recorded per epoch: the pairing's own training loss (mean over the epoch's batches) and the test
accuracy; per run, how many steps had a non-finite loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from logmax.study.pairings import Pairing
from logmax.study.progress import Progress, Silent


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 32
    test_fraction: float = 0.25
    split_seed: int = 0
    target_accuracy: float = 0.95


# The quick run: two seeds and 12 epochs, enough for the logits pairings to reach the full run's
# 95% target (about 2 s of training) while Softmax + CrossEntropyLoss and Softmax + MSELoss do not.
QUICK = TrainConfig(epochs=12, seeds=(0, 1))


@dataclass(frozen=True)
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def classes(self) -> int:
        return int(self.y_train.max()) + 1


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(X, y)``: the same arrays as ``load_digits(return_X_y=True)``.

    ``load_digits`` reads ``sklearn/datasets/data/digits.csv.gz`` (pixels, then the label, per
    line). Importing ``sklearn.datasets`` costs seconds, so the file is read directly when it is
    where scikit-learn keeps it, and through ``load_digits`` otherwise.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with each class split in the same proportion (fixed seed)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> Digits:
    """scikit-learn's digits, pixels / 16, split stratified by class with a fixed seed."""
    x, y = digits_arrays()
    x = (x / 16.0).astype(np.float32)
    train, test = stratified_split(y, test_fraction, seed)
    return Digits(
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]).long(),
        torch.from_numpy(x[test]),
        torch.from_numpy(y[test]).long(),
    )


@dataclass
class Run:
    """One training run: a pairing with one seed."""

    pairing: str
    seed: int
    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    nonfinite_steps: int = 0

    def epochs_to(self, accuracy: float) -> int | None:
        """First epoch (1-based) whose test accuracy reaches ``accuracy``; None if none does."""
        for epoch, acc in enumerate(self.test_accuracy, start=1):
            if acc >= accuracy:
                return epoch
        return None


def body(features: int, hidden: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def train_one(pairing: Pairing, seed: int, data: Digits, config: TrainConfig) -> Run:
    """Train the network once with ``pairing``; see the module docstring for the protocol."""
    torch.manual_seed(seed)
    model = nn.Sequential(body(data.x_train.shape[1], config.hidden, data.classes), pairing.head())
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    order = torch.Generator().manual_seed(seed)
    run = Run(pairing.label, seed)
    n = data.x_train.shape[0]
    for _ in range(config.epochs):
        model.train()
        total, batches = 0.0, 0
        for idx in torch.randperm(n, generator=order).split(config.batch_size):
            loss = pairing.loss(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()  # a non-finite step is taken as a user's loop would take it
            value = float(loss.detach())
            # a NaN gradient with a finite loss poisons the weights, so the next loss shows it
            run.nonfinite_steps += not math.isfinite(value)
            total += value
            batches += 1
        run.train_loss.append(total / batches)
        model.eval()
        with torch.no_grad():
            predicted = model(data.x_test).argmax(dim=1)
        run.test_accuracy.append(float((predicted == data.y_test).float().mean()))
    return run


def train_all(
    pairings: list[Pairing], config: TrainConfig, progress: Progress | None = None
) -> list[Run]:
    """Every pairing with every seed of ``config``, single-threaded (tiny matrices)."""
    progress = progress or Silent()
    data = load_digits_split(config.test_fraction, config.split_seed)
    progress.start("training on digits", len(pairings) * len(config.seeds))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the matrices are tiny: threads only add overhead
    try:
        runs = []
        for pairing in pairings:
            for seed in config.seeds:
                runs.append(train_one(pairing, seed, data, config))
                progress.advance()
    finally:
        torch.set_num_threads(threads)
    return runs


@dataclass(frozen=True)
class Summary:
    """The runs of one pairing, summarised over seeds."""

    pairing: str
    final_accuracy: float  # mean over seeds
    final_accuracy_sd: float  # sample standard deviation over seeds (0 for one seed)
    epochs_to_target: list[int | None]  # per seed
    final_train_loss: float
    nonfinite_steps: int

    @property
    def reached(self) -> int:
        return sum(e is not None for e in self.epochs_to_target)

    @property
    def median_epochs(self) -> float | None:
        """Median epochs to the target over seeds, counting a seed that never got there as inf."""
        values = sorted(math.inf if e is None else e for e in self.epochs_to_target)
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        return None if math.isinf(median) else median


def summarise(runs: list[Run], target: float) -> list[Summary]:
    """One :class:`Summary` per pairing, in the order the pairings were run."""
    by_pairing: dict[str, list[Run]] = {}
    for run in runs:
        by_pairing.setdefault(run.pairing, []).append(run)
    summaries = []
    for label, group in by_pairing.items():
        finals = np.array([r.test_accuracy[-1] for r in group])
        summaries.append(
            Summary(
                pairing=label,
                final_accuracy=float(finals.mean()),
                final_accuracy_sd=float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
                epochs_to_target=[r.epochs_to(target) for r in group],
                final_train_loss=float(np.mean([r.train_loss[-1] for r in group])),
                nonfinite_steps=sum(r.nonfinite_steps for r in group),
            )
        )
    return summaries
