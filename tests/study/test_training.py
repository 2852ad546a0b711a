"""The training study on a tiny budget, and the comparison that turns runs into findings."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from logmax.study.pairings import BASELINE, pairings  # noqa: E402
from logmax.study.run import compare, training_findings  # noqa: E402
from logmax.study.training import (  # noqa: E402
    Run,
    Summary,
    TrainConfig,
    digits_arrays,
    load_digits_split,
    stratified_split,
    summarise,
    train_all,
)

TINY = TrainConfig(epochs=2, seeds=(0, 1), hidden=8, target_accuracy=0.5)


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    found, _ = pairings(include_logmax=True)
    return train_all(found, TINY)


def test_digits_are_scikit_learns() -> None:
    from sklearn.datasets import load_digits

    x, y = digits_arrays()
    x_ref, y_ref = load_digits(return_X_y=True)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_digits_split_is_stratified_disjoint_and_fixed() -> None:
    a, b = load_digits_split(), load_digits_split()
    assert a.classes == 10
    assert a.x_train.shape[1] == 64 and float(a.x_train.max()) <= 1.0
    assert (a.y_test == b.y_test).all()
    assert a.x_test.shape[0] + a.x_train.shape[0] == 1797
    assert a.x_test.shape[0] == pytest.approx(0.25 * 1797, abs=10)
    train_share = np.bincount(a.y_train.numpy()) / len(a.y_train)
    test_share = np.bincount(a.y_test.numpy()) / len(a.y_test)
    assert np.abs(train_share - test_share).max() < 0.01
    _, y = digits_arrays()
    train, test = stratified_split(y, 0.25, 0)
    assert not set(train) & set(test) and len(set(train) | set(test)) == len(y)


def test_every_pairing_and_seed_is_trained(runs: list[Run]) -> None:
    labels = {r.pairing for r in runs}
    assert BASELINE in labels and "Softmax + MSELoss" in labels
    for run in runs:
        assert len(run.train_loss) == TINY.epochs == len(run.test_accuracy)
        assert all(0.0 <= a <= 1.0 for a in run.test_accuracy)


def test_pairings_computing_the_same_function_train_the_same(runs: list[Run]) -> None:
    # same weights, same batches, same maths: only rounding may differ
    for seed in TINY.seeds:
        base = next(r for r in runs if r.pairing == BASELINE and r.seed == seed)
        for label in ("LogSoftmax + NLLLoss", "LogSoftmax + CrossEntropyLoss"):
            other = next(r for r in runs if r.pairing == label and r.seed == seed)
            assert other.train_loss == pytest.approx(base.train_loss, rel=1e-4)


def test_double_softmax_learns_slower_than_logits(runs: list[Run]) -> None:
    by = {s.pairing: s for s in summarise(runs, TINY.target_accuracy)}
    assert by["Softmax + CrossEntropyLoss"].final_train_loss > by[BASELINE].final_train_loss


def test_epochs_to_and_median_count_never_as_infinite() -> None:
    run = Run("x", 0, train_loss=[1, 1, 1], test_accuracy=[0.2, 0.96, 0.97])
    assert run.epochs_to(0.95) == 2 and run.epochs_to(0.99) is None
    s = Summary("x", 0.9, 0.0, [3, None, None], 0.1, 0)
    assert s.median_epochs is None and s.reached == 1
    assert Summary("x", 0.9, 0.0, [3, 5, None], 0.1, 0).median_epochs == 5


def _summary(label: str, acc: float, epochs: list[int | None]) -> Summary:
    return Summary(label, acc, 0.002, epochs, 0.1, 0)


def test_compare_uses_accuracy_and_speed() -> None:
    base = _summary("a", 0.97, [4, 4, 5])
    assert compare(_summary("b", 0.97, [4, 5, 5]), base) == "same"
    assert compare(_summary("b", 0.90, [4, 4, 5]), base) == "worse"
    assert compare(_summary("b", 0.97, [12, 13, 15]), base) == "worse"
    assert compare(_summary("b", 0.97, [None, None, None]), base) == "worse"
    assert compare(base, _summary("b", 0.90, [None, None, None])) == "better"


def test_findings_follow_the_measurements_not_the_seeds() -> None:
    # a world where Softmax + CrossEntropyLoss trains as well as logits: the finding must say
    # that the seed's claim is not borne out
    runs = [
        Run(label, 0, train_loss=[1.0, 0.5], test_accuracy=[0.9, 0.97])
        for label in (
            BASELINE,
            "Softmax + CrossEntropyLoss",
            "LogSoftmax + CrossEntropyLoss",
            "LogSoftmax + NLLLoss",
        )
    ]
    findings = training_findings(runs, summarise(runs, 0.95), 0.95)
    probabilities = next(f for f in findings if "passing probabilities" in f.text)
    assert probabilities.agrees is False and "same" in probabilities.text
    logprobs = next(f for f in findings if "passing log-probabilities" in f.text)
    assert logprobs.agrees is False and "trains as well as logits" in logprobs.text
    equivalent = next(f for f in findings if "LogSoftmax + NLLLoss is equivalent" in f.text)
    assert equivalent.agrees is True


def test_the_quick_run_reaches_its_target_where_the_full_run_does() -> None:
    # the quick training table must tell the pairings apart, not say "never" everywhere
    from logmax.study.training import QUICK

    found, _ = pairings(include_logmax=False)
    by = {s.pairing: s for s in summarise(train_all(found, QUICK), QUICK.target_accuracy)}
    assert QUICK.target_accuracy == TrainConfig().target_accuracy
    for good in (BASELINE, "LogSoftmax + NLLLoss", "LogSoftmax + CrossEntropyLoss"):
        assert by[good].reached == len(QUICK.seeds), good
    for bad in ("Softmax + CrossEntropyLoss", "Softmax + MSELoss"):
        assert by[bad].reached == 0, bad
