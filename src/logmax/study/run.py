"""Run the whole study and turn its measurements into parts with computed findings.

Every finding's text is produced from the numbers just measured, and its ``agrees`` flag says
whether the measurement bears out the seed's claim; a claim the data contradict is reported as
differing, with the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from logmax.study.progress import Progress, Silent
from logmax.study.results import Finding, Part, Table, fmt, fmt_ulp
from logmax.study.training import QUICK, Run, Summary, TrainConfig


@dataclass(frozen=True)
class StudyConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(seeds=(0, 1, 2, 3)))
    alpha_points: int = 48
    margin_points: int = 281
    include_logmax_torch: bool = True


QUICK_STUDY = StudyConfig(train=QUICK, alpha_points=12, margin_points=57)


# ---------------------------------------------------------------------------------------------
# training (seed 000 / 003)


def _epochs(value: float | None) -> float:
    return math.inf if value is None else value


def compare(a: Summary, b: Summary) -> str:
    """``'better'``, ``'worse'`` or ``'same'``: ``a`` against ``b`` in accuracy and speed.

    Different means: final accuracy apart by more than max(1 point, 2 standard deviations over
    seeds), or the median epochs to the target apart by more than 2 (never reaching it counts as
    infinitely many).
    """
    margin = max(0.01, 2 * max(a.final_accuracy_sd, b.final_accuracy_sd))
    ea, eb = _epochs(a.median_epochs), _epochs(b.median_epochs)
    slower = ea > eb + 2 or (math.isinf(ea) and not math.isinf(eb))
    faster = eb > ea + 2 or (math.isinf(eb) and not math.isinf(ea))
    if a.final_accuracy < b.final_accuracy - margin or (slower and not faster):
        return "worse"
    if a.final_accuracy > b.final_accuracy + margin or faster:
        return "better"
    return "same"


def _describe(s: Summary, target: float) -> str:
    median = s.median_epochs
    if median is not None:
        speed = f"reaches {target:.0%} in {fmt(median, 4)} epochs (median)"
    elif s.reached == 0:
        speed = f"never reaches {target:.0%}"
    else:
        speed = f"reaches {target:.0%} in only {s.reached} of {len(s.epochs_to_target)} seeds"
    return f"{s.pairing}: final accuracy {s.final_accuracy:.3f}, {speed}"


def _curve_gap(runs: list[Run], a: str, b: str) -> tuple[float, float]:
    """Largest |accuracy difference| and largest relative |loss difference| between two pairings
    over all seeds and epochs."""
    acc_gap, loss_gap = 0.0, 0.0
    for ra in (r for r in runs if r.pairing == a):
        rb = next(r for r in runs if r.pairing == b and r.seed == ra.seed)
        acc_gap = max(
            acc_gap, float(np.max(np.abs(np.subtract(ra.test_accuracy, rb.test_accuracy))))
        )
        la, lb = np.asarray(ra.train_loss), np.asarray(rb.train_loss)
        with np.errstate(all="ignore"):
            rel = np.abs(la - lb) / np.maximum(np.abs(lb), 1e-300)
        loss_gap = max(loss_gap, float(np.nanmax(rel)))
    return acc_gap, loss_gap


def training_findings(runs: list[Run], summaries: list[Summary], target: float) -> list[Finding]:
    from logmax.study.pairings import BASELINE

    by = {s.pairing: s for s in summaries}
    base = by[BASELINE]
    findings = []

    def have(*labels: str) -> bool:
        return all(label in by for label in labels)

    if have("LogSoftmax + CrossEntropyLoss", "Softmax + CrossEntropyLoss"):
        log_ce, sm_ce = by["LogSoftmax + CrossEntropyLoss"], by["Softmax + CrossEntropyLoss"]
        verdict = compare(log_ce, sm_ce)
        findings.append(
            Finding(
                "Seed 000 asks why a LogSoftmax last layer gives much better results than Softmax "
                f"(both into CrossEntropyLoss). Measured: LogSoftmax is {verdict} "
                f"({_describe(log_ce, target)}; {_describe(sm_ce, target)}).",
                agrees=verdict == "better",
            )
        )
        verdict = compare(sm_ce, base)
        findings.append(
            Finding(
                "Seed 000's reply: passing probabilities (nn.Softmax) to CrossEntropyLoss 'won't "
                f"work as intended'. Measured against logits: {verdict} "
                f"({_describe(sm_ce, target)}; final training loss "
                f"{sm_ce.final_train_loss:.3g} against {base.final_train_loss:.3g}).",
                agrees=verdict == "worse",
            )
        )
        verdict = compare(log_ce, base)
        acc_gap, loss_gap = _curve_gap(runs, log_ce.pairing, BASELINE)
        findings.append(
            Finding(
                "Seed 000's reply: passing log-probabilities (nn.LogSoftmax) to CrossEntropyLoss "
                f"'won't work as intended'. Measured against logits: {verdict}; the curves differ "
                f"by at most {acc_gap:.3g} in accuracy and {loss_gap:.2g} (relative) in loss, "
                "because log_softmax(log_softmax(z)) = log_softmax(z)"
                + (
                    ". It trains as well as logits (as another reply in the thread found)."
                    if verdict == "same"
                    else "."
                ),
                agrees=verdict == "worse",
            )
        )
    if have("LogSoftmax + NLLLoss"):
        s = by["LogSoftmax + NLLLoss"]
        verdict = compare(s, base)
        acc_gap, loss_gap = _curve_gap(runs, s.pairing, BASELINE)
        findings.append(
            Finding(
                "Seed 003: LogSoftmax + NLLLoss is equivalent to CrossEntropyLoss. Measured: "
                f"{verdict}; largest accuracy gap over all epochs and seeds {acc_gap:.3g}, "
                f"largest relative loss gap {loss_gap:.2g}.",
                agrees=verdict == "same",
            )
        )
    if have("Softmax + MSELoss"):
        s = by["Softmax + MSELoss"]
        verdict = compare(s, base)
        findings.append(
            Finding(
                "Seed 003: squared error is a poor loss for softmax units. Measured against "
                f"logits + CrossEntropyLoss: {verdict} ({_describe(s, target)}).",
                agrees=verdict == "worse",
            )
        )
    if have("log(Softmax) + NLLLoss", "LogSoftmax + NLLLoss"):
        s, ref = by["log(Softmax) + NLLLoss"], by["LogSoftmax + NLLLoss"]
        verdict = compare(s, ref)
        broke = s.nonfinite_steps > 0
        findings.append(
            Finding(
                "Seed 002: log(softmax(z)) is numerically worse than log_softmax(z). In training "
                f"on digits, log(Softmax) + NLLLoss against LogSoftmax + NLLLoss: {verdict}, "
                f"{s.nonfinite_steps} non-finite step(s)"
                + (
                    "; the failure needs a true-class probability that underflows in float32, "
                    "which this training never produced (the gradient and alpha sweeps show "
                    "where it happens)."
                    if not broke and verdict == "same"
                    else "."
                ),
                agrees=broke or verdict == "worse",
            )
        )
    lm = [label for label in by if "logmax.torch" in label]
    for label in lm:
        s = by[label]
        verdict = compare(s, base)
        acc_gap, loss_gap = _curve_gap(runs, label, BASELINE)
        findings.append(
            Finding(
                f"{label} against torch's CrossEntropyLoss: {verdict}; largest accuracy gap "
                f"{acc_gap:.3g}, largest relative loss gap {loss_gap:.2g}."
            )
        )
    return findings


def training_table(summaries: list[Summary], config: TrainConfig) -> Table:
    rows = []
    for s in summaries:
        per_seed = ", ".join("never" if e is None else str(e) for e in s.epochs_to_target)
        median = s.median_epochs
        rows.append(
            (
                s.pairing,
                f"{s.final_accuracy:.3f} ± {s.final_accuracy_sd:.3f}",
                "never" if median is None else fmt(median, 4),
                per_seed,
                f"{s.reached}/{len(s.epochs_to_target)}",
                f"{s.final_train_loss:.4g}",
                str(s.nonfinite_steps),
            )
        )
    return Table(
        f"Digits, {config.epochs} epochs, {len(config.seeds)} seed(s)",
        (
            "pairing",
            "final test accuracy (mean ± sd)",
            f"epochs to {config.target_accuracy:.0%} (median)",
            "epochs per seed",
            f"seeds reaching {config.target_accuracy:.0%}",
            "final training loss",
            "steps with a non-finite loss",
        ),
        tuple(rows),
        note=(
            f"Linear(64, {config.hidden}) -> ReLU -> Linear({config.hidden}, 10) -> head; SGD "
            f"lr={config.lr}, momentum={config.momentum}, batch {config.batch_size}; "
            f"test set {config.test_fraction:.0%} of 1797 images."
        ),
    )


def training_part(config: TrainConfig, include_logmax: bool, progress: Progress) -> Part:
    from logmax.study.figures import training_figure
    from logmax.study.pairings import pairings
    from logmax.study.training import summarise, train_all

    found, missing = pairings(include_logmax)
    runs = train_all(found, config, progress)
    summaries = summarise(runs, config.target_accuracy)
    findings = training_findings(runs, summaries, config.target_accuracy)
    findings.extend(Finding(note) for note in missing)
    return Part(
        key="training",
        title="Seeds 000 and 003 on real data: one network, every head/loss pairing",
        claim=(
            "Softmax into CrossEntropyLoss trains worse than LogSoftmax; log-probabilities or "
            "probabilities into CrossEntropyLoss 'won't work as intended'; LogSoftmax + NLLLoss "
            "equals CrossEntropyLoss; squared error is a poor loss for softmax units."
        ),
        tables=[training_table(summaries, config)],
        figures=[training_figure(runs, config.target_accuracy)],
        findings=findings,
    )


# ---------------------------------------------------------------------------------------------
# penalty arithmetic and gradients (seed 000 / 003)


def gradient_part(margin_points: int, progress: Progress) -> Part:
    from logmax.study.figures import gradient_figure, penalty_figure
    from logmax.study.gradients import SEED000_RATIOS, gradient_sweep, penalties

    progress.start("penalties and gradients (seeds 000, 003)", 2)
    cases = penalties()
    rows = tuple(
        (
            fmt(c.p, 3),
            f"{c.l1:.4g}",
            f"{c.nll:.4g}",
            fmt(c.seed_l1, 3),
            fmt(c.seed_nll, 3),
        )
        for c in cases
    )
    penalty_table = Table(
        "Penalty of the true class's probability p",
        ("p", "L1: 1 - p", "NLL: -ln p", "seed's L1", "seed's NLL"),
        rows,
    )
    (good, bad) = cases
    ratio_l1, ratio_nll = bad.l1 / good.l1, bad.nll / good.nll
    findings = [
        Finding(
            "Seed 000's arithmetic: "
            + "; ".join(f"p={c.p}: L1 {c.l1:.3g}, NLL {c.nll:.3g}" for c in cases)
            + ". "
            + (
                "Matches the seed's numbers."
                if all(c.printed_like_seed() for c in cases)
                else "Does NOT match the seed's numbers."
            ),
            agrees=all(c.printed_like_seed() for c in cases),
        ),
        Finding(
            f"Going from p={good.p} to p={bad.p} multiplies the L1 penalty by {ratio_l1:.3g} and "
            f"the NLL by {ratio_nll:.3g} (seed: {SEED000_RATIOS[0]:g} and ~{SEED000_RATIOS[1]:g}).",
            agrees=round(ratio_l1) == SEED000_RATIOS[0] and abs(ratio_nll - SEED000_RATIOS[1]) < 1,
        ),
    ]
    progress.advance()
    margins = np.linspace(-120.0, 20.0, margin_points)
    sweep32 = gradient_sweep(margins, dtype="float32")
    sweep64 = gradient_sweep(margins, dtype="float64")
    progress.advance()
    probe = -10.0
    ce = sweep64.at("logits + CrossEntropyLoss", probe)
    grad_rows = []
    for label in sweep32.norms:
        first_bad = sweep32.first_nonfinite(label)
        grad_rows.append(
            (
                label,
                f"{sweep64.at(label, probe):.3g}",
                f"{sweep64.at(label, -50.0):.3g}",
                f"{sweep64.at(label, 5.0):.3g}",
                "never" if first_bad is None else f"margin <= {fmt(first_bad, 4)}",
            )
        )
    grad_table = Table(
        f"||dL/dz|| of a {sweep32.classes}-class row with logit margin m",
        ("pairing", "m = -10", "m = -50", "m = +5", "float32 gradient NaN/inf"),
        tuple(grad_rows),
        note="gradient norms computed in float64; the last column from the float32 run",
    )
    for label in ("Softmax + MSELoss", "Softmax + CrossEntropyLoss", "Softmax + L1 (1 - p)"):
        g = sweep64.at(label, probe)
        vanishes = g < 1e-3 * ce
        findings.append(
            Finding(
                f"Seed 003's vanishing gradient: at margin {fmt(probe, 3)} (confidently wrong) "
                f"{label} has ||grad|| = {g:.3g}, {g / ce:.2g} times cross-entropy's {ce:.3g}"
                + (": it has all but vanished." if vanishes else ": it has not vanished."),
                agrees=vanishes if label == "Softmax + MSELoss" else None,
            )
        )
    naive_bad = sweep32.first_nonfinite("log(Softmax) + NLLLoss")
    stable_bad = sweep32.first_nonfinite("LogSoftmax + NLLLoss")
    findings.append(
        Finding(
            "In float32 the gradient of log(Softmax) + NLLLoss is "
            + (
                f"NaN/inf from margin {fmt(naive_bad, 4)} down"
                if naive_bad is not None
                else "finite over the whole sweep"
            )
            + "; LogSoftmax + NLLLoss's is "
            + (
                "finite everywhere."
                if stable_bad is None
                else f"NaN from margin {fmt(stable_bad, 4)}."
            ),
            agrees=naive_bad is not None and stable_bad is None,
        )
    )
    return Part(
        key="gradients",
        title="Seeds 000 and 003: the penalty and the gradient of each loss",
        claim=(
            "Seed 000: L1 gives 0.1 and 0.7, the log-likelihood 0.105 and 1.20 (factors 7 and "
            "~11). Seed 003: squared error on a saturated softmax has a vanishing gradient."
        ),
        tables=[penalty_table, grad_table],
        figures=[penalty_figure(cases), gradient_figure(sweep64, sweep32)],
        findings=findings,
    )


# ---------------------------------------------------------------------------------------------
# alpha sweep (seed 002)


def alpha_part(points: int, progress: Progress) -> Part:
    from logmax.study.alpha_sweep import alpha_sweep, default_alphas
    from logmax.study.figures import alpha_figure

    sweep = alpha_sweep(default_alphas(points), progress)
    rows = []
    for label, errors in sweep.errors.items():
        first = sweep.first_failure(label)
        rows.append(
            (
                label,
                "never" if first is None else fmt(first, 6),
                fmt_ulp(sweep.worst(label)),
                f"{int(np.sum(errors <= 1))}/{len(errors)}",
            )
        )
    rows.extend((label, why, "", "") for label, why in sweep.unavailable.items())
    table = Table(
        f"Sweep of {len(sweep.alphas)} alphas from {fmt(sweep.alphas[0], 4)} to "
        f"{fmt(sweep.alphas[-1], 6)}",
        (
            "computed by",
            "first alpha with -inf",
            "largest finite error (ULP)",
            "alphas within 1 ULP",
        ),
        tuple(rows),
        note="errors in float32 ULPs of the exact value; the float64 result is rounded to float32",
    )
    labels = list(sweep.errors)
    naive32 = next(label for label in labels if "torch.log(" in label and "float32" in label)
    naive64 = next((label for label in labels if "float64" in label), None)
    torch32 = next(label for label in labels if label.startswith("torch.log_softmax"))
    findings = []
    f32, f64 = sweep.first_failure(naive32), sweep.first_failure(naive64) if naive64 else None
    findings.append(
        Finding(
            "Seed 002: naive log(softmax) in float32 returns -inf "
            + (f"from alpha={fmt(f32, 6)}" if f32 is not None else "at no alpha of the sweep")
            + "; the seed's float64 reference "
            + (
                f"from alpha={fmt(f64, 6)} ('it won't set in as soon')."
                if f64 is not None
                else "never fails in the sweep."
            ),
            agrees=f32 is not None and (f64 is None or f64 > f32),
        )
    )
    t_fail = sweep.first_failure(torch32)
    findings.append(
        Finding(
            "torch.log_softmax never returns -inf"
            if t_fail is None
            else f"torch.log_softmax returns -inf from alpha={fmt(t_fail, 6)}",
            agrees=t_fail is None,
        )
    )
    for label in (torch32, naive64):
        if label is None:
            continue
        alpha, got, want = sweep.worst_entry(label)
        findings.append(
            Finding(
                f"{label}: largest error {fmt_ulp(sweep.worst(label))} ULP, at "
                f"alpha={fmt(alpha, 6)}, where it gives {fmt(got, 9)} and the exact value is "
                f"{fmt(want, 9)}"
                + (
                    " (the log-probability of the likely class, -log1p(e^-alpha + e^-2alpha), "
                    "lost to rounding)."
                    if want != 0 and abs(want) < 1e-3
                    else "."
                )
            )
        )
    lm = next((label for label in labels if label.startswith("logmax")), None)
    if lm is not None:
        worst = sweep.worst(lm)
        findings.append(
            Finding(
                f"logmax.log_softmax: largest error {fmt_ulp(worst)} ULP over the sweep, "
                + ("within" if worst <= 1 else "OUTSIDE")
                + " its 1 ULP promise"
                + (", never -inf." if sweep.first_failure(lm) is None else ", but returns -inf!")
            )
        )
    for label, why in sweep.unavailable.items():
        findings.append(Finding(f"{label}: {why}"))
    return Part(
        key="alpha",
        title="Seed 002, swept: log(softmax) against log_softmax against the exact value",
        claim=(
            "log(softmax(x)) gives -inf once the softmax underflows (alpha=1000 in the seed); "
            "log_softmax does not. Use the naive float64 result as the 'true' value."
        ),
        tables=[table],
        figures=[alpha_figure(sweep)],
        findings=findings,
    )


# ---------------------------------------------------------------------------------------------


def run_study(config: StudyConfig | None = None, progress: Progress | None = None) -> list[Part]:
    """The whole study: worked examples, training, penalties and gradients, alpha sweep."""
    from logmax.study.worked_examples import all_examples

    config = config or StudyConfig()
    progress = progress or Silent()
    progress.start("worked examples (seeds 000-003)", 1)
    parts = all_examples()
    progress.advance()
    parts.append(training_part(config.train, config.include_logmax_torch, progress))
    parts.append(gradient_part(config.margin_points, progress))
    parts.append(alpha_part(config.alpha_points, progress))
    return parts
