"""The rule catalogue of ``logmax lint``: one entry per code, with its severity and its fix.

Codes are grouped by what goes wrong:

- ``LMX0xx`` the file itself: it could not be read or parsed.
- ``LMX1xx`` wrong or unstable numbers: the code computes something other than what it means, or
  overflows/underflows to ``inf``/``-inf``/``NaN`` for ordinary inputs.
- ``LMX2xx`` waste and ambiguity: the result is right, but work is done twice or depends on a
  default that changes with the input's shape.

Severities: ``error`` (wrong results or NaN in normal use), ``warning`` (fragile or wasteful).

======  ==============================  ========  =============================================
code    name                            severity  what is found
======  ==============================  ========  =============================================
LMX000  syntax-error                    error     the file or notebook cell cannot be parsed
LMX101  softmax-into-cross-entropy      error     probabilities (softmax output) passed to
                                                  ``CrossEntropyLoss``/``F.cross_entropy``
LMX102  probabilities-into-nll-loss     error     probabilities passed to ``NLLLoss``/``F.nll_loss``
                                                  or as the input of ``KLDivLoss``/``F.kl_div``
LMX103  log-of-softmax                  error     ``log(softmax(x))`` in any spelling
LMX104  unshifted-softmax               error     ``exp(x) / exp(x).sum()`` without ``x - max``
LMX105  unshifted-logsumexp             error     ``log(sum(exp(x)))`` without ``x - max``
LMX106  regression-loss-on-softmax      warning   ``MSELoss``/``L1Loss``/``SmoothL1Loss``/
                                                  ``HuberLoss`` on softmax output
LMX107  manual-cross-entropy            warning   ``-(y * log(p)).sum()`` written by hand
LMX201  log-softmax-into-cross-entropy  warning   log-probabilities passed to ``CrossEntropyLoss``
LMX202  implicit-softmax-dim            warning   ``softmax``/``log_softmax``/``nn.Softmax`` without
                                                  ``dim`` (or SciPy's without ``axis``)
======  ==============================  ========  =============================================

Why each rule exists and what to write instead is in :data:`RULES` (``why`` and ``fix``); the
README section "logmax lint" shows the same table with examples.

LMX000 syntax-error
    Why: a file that does not parse cannot be checked; reporting it keeps the run going instead
    of crashing on one bad file. Fix: make the file valid Python 3 (or exclude it).
LMX101 softmax-into-cross-entropy
    ``CrossEntropyLoss`` computes ``-log_softmax(input)[target]``: it expects raw logits. Given
    probabilities ``p`` it computes ``log_softmax(p)``, a softmax of numbers in [0, 1] that is
    nearly uniform, so the loss barely moves and the gradient is squashed (seed 000: "the loss
    stagnates"). Found through ``nn.Softmax`` layers, ``nn.Sequential`` ending in Softmax,
    ``forward`` methods returning a softmax, ``self.layer`` attributes and local variables.
    Fix: pass the logits (drop the Softmax); keep ``softmax`` for reporting probabilities only.
LMX102 probabilities-into-nll-loss
    ``NLLLoss`` computes ``-input[target]``: it expects log-probabilities. Given probabilities the
    loss is ``-p[target]``, a different objective with weak gradients. ``KLDivLoss`` also takes
    log-probabilities as its input (its target is probabilities, which is not reported). Fix: use
    ``log_softmax`` instead of ``softmax`` before ``NLLLoss``/``KLDivLoss``, or
    ``CrossEntropyLoss`` on the logits.
LMX103 log-of-softmax
    ``softmax`` rounds small probabilities to 0 (below about 1e-38 in float32, i.e. a logit gap of
    ~87), and ``log(0) = -inf``; its gradient is NaN (seed 002: ``log(softmax(1000 * x))`` gives
    ``-inf`` where ``log_softmax`` gives ``-2000``). ``log_softmax`` computes ``(x - m) - log(sum
    exp(x - m))`` directly. Spellings: ``torch.log``/``np.log``/``math.log``/``.log()`` of
    ``torch.softmax``/``F.softmax``/``.softmax()``/``nn.Softmax()(x)``/``scipy.special.softmax``/
    ``logmax.softmax``, of a hand-written softmax, of a variable holding one, and
    ``log(softmax(x) + eps)`` (which biases the result instead of failing). Fix:
    ``F.log_softmax(x, dim=...)``/``torch.log_softmax``/``x.log_softmax(dim)``/``nn.LogSoftmax``,
    ``scipy.special.log_softmax(x, axis=...)`` or ``logmax.log_softmax(x, axis=...)``. ``--fix``
    rewrites ``log(M.softmax(args))`` and ``M.softmax(args).log()`` to ``M.log_softmax(args)``
    (same arguments: the two functions pick the same default dim), and ``log(nn.Softmax(d)(x))`` to
    ``nn.LogSoftmax(d)(x)``; never the ``+ eps`` form.
LMX104 unshifted-softmax
    ``exp(x)`` overflows to ``inf`` for x > 88.7 in float32 (709.8 in float64) and ``inf/inf`` is
    NaN; if every ``x`` is very negative, the sum underflows to 0 and ``0/0`` is NaN. Subtracting
    the row maximum first makes the largest term exactly 1. Any subtraction in the argument of
    ``exp`` (``x - x.max(...)``, ``x - m``) counts as a shift. Fix: ``torch.softmax(x, dim=...)``,
    ``scipy.special.softmax(x, axis=...)`` or ``logmax.softmax(x, axis=...)``.
LMX105 unshifted-logsumexp
    Same overflow as LMX104 (``log(inf) = inf``), and ``log(0) = -inf`` when all terms underflow.
    Fix: ``torch.logsumexp(x, dim=...)``, ``scipy.special.logsumexp(x, axis=...)`` or
    ``logmax.logsumexp(x, axis=...)``. ``--fix`` rewrites ``torch.log(torch.sum(torch.exp(x),
    dim=d))`` (and the ``.sum(d)``/``.log()`` method spellings) to ``torch.logsumexp(x, d)``
    when the sum names its dim and takes no other argument than ``keepdim``.
LMX106 regression-loss-on-softmax
    Squared or absolute error on softmax outputs saturates: when the softmax is confidently wrong,
    its Jacobian is nearly 0 and the model stops learning (Goodfellow et al., Deep Learning 6.2.2.3;
    seed 003). Fix: train with ``F.cross_entropy(logits, target)`` (soft targets are accepted);
    keep MSE for reporting only.
LMX107 manual-cross-entropy
    ``-(y * log(p)).sum()`` on probabilities: ``log`` of a probability that rounded to 0 is
    ``-inf`` and ``0 * -inf`` is NaN, so one confident row makes the whole batch loss NaN; it also
    computes the softmax and the log separately (seed 001's ``CrossEntropy``). Fix:
    ``F.cross_entropy(logits, target)`` (class indices or probabilities as target) or
    ``logmax.cross_entropy(logits, target)``; with log-probabilities already at hand,
    ``-(y * log_p).sum()`` is fine and is not reported.
LMX201 log-softmax-into-cross-entropy
    ``CrossEntropyLoss`` applies ``log_softmax`` itself; ``log_softmax`` of log-probabilities is
    the identity (their logsumexp is 0), so the loss is right but one softmax pass is wasted and
    the model's output is easy to misuse. Fix: pass the logits, or keep ``log_softmax`` and use
    ``NLLLoss``.
LMX202 implicit-softmax-dim
    ``F.softmax(x)`` without ``dim`` picks dim 0 for 0-, 1- and 3-dimensional input and dim 1
    otherwise (deprecated; torch warns), so a batch of one image and a batch of vectors normalize
    along different axes. ``scipy.special.softmax(x)`` without ``axis`` normalizes over all
    elements of a batch. Fix: name it: ``F.softmax(x, dim=-1)``, ``nn.Softmax(dim=1)``,
    ``scipy.special.softmax(x, axis=-1)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One lint rule: its code, a short name, severity, and what to tell the user."""

    code: str
    name: str
    severity: str  # "error" | "warning"
    summary: str
    why: str
    fix: str


RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule(
            "LMX000",
            "syntax-error",
            "error",
            "the file cannot be parsed",
            "a file that does not parse cannot be checked",
            "make it valid Python 3 or exclude it",
        ),
        Rule(
            "LMX101",
            "softmax-into-cross-entropy",
            "error",
            "softmax output passed to cross-entropy, which applies log_softmax itself",
            "cross_entropy(softmax(x)) takes a softmax of probabilities: the loss barely moves",
            "pass the raw logits and drop the softmax",
        ),
        Rule(
            "LMX102",
            "probabilities-into-nll-loss",
            "error",
            "probabilities passed to NLLLoss or KLDivLoss, which expect log-probabilities",
            "nll_loss(p) computes -p[target], not -log p[target]",
            "use log_softmax instead of softmax, or cross_entropy on the logits",
        ),
        Rule(
            "LMX103",
            "log-of-softmax",
            "error",
            "log of a softmax: -inf once a probability rounds to 0",
            "softmax underflows to 0 for logit gaps above ~87 (float32); log(0) = -inf, NaN grads",
            "use log_softmax",
        ),
        Rule(
            "LMX104",
            "unshifted-softmax",
            "error",
            "hand-written softmax exp(x)/sum(exp(x)) without subtracting the max",
            "exp overflows to inf above 88.7 (float32) and inf/inf = NaN",
            "use softmax (torch.softmax / scipy.special.softmax / logmax.softmax)",
        ),
        Rule(
            "LMX105",
            "unshifted-logsumexp",
            "error",
            "hand-written log(sum(exp(x))) without subtracting the max",
            "exp overflows to inf above 88.7 (float32); all-underflow gives log(0) = -inf",
            "use logsumexp (torch.logsumexp / scipy.special.logsumexp / logmax.logsumexp)",
        ),
        Rule(
            "LMX106",
            "regression-loss-on-softmax",
            "warning",
            "squared/absolute error on softmax output",
            "the softmax saturates and the gradient vanishes when the model is confidently wrong",
            "train with cross_entropy on the logits",
        ),
        Rule(
            "LMX107",
            "manual-cross-entropy",
            "warning",
            "hand-written cross-entropy -(y * log(p)).sum() on probabilities",
            "log(0) = -inf and 0 * -inf = NaN: one confident row makes the loss NaN",
            "use F.cross_entropy(logits, target) or logmax.cross_entropy(logits, target)",
        ),
        Rule(
            "LMX201",
            "log-softmax-into-cross-entropy",
            "warning",
            "log_softmax output passed to cross-entropy, which applies log_softmax itself",
            "the result is right but log_softmax runs twice",
            "pass the logits, or keep log_softmax and use NLLLoss",
        ),
        Rule(
            "LMX202",
            "implicit-softmax-dim",
            "warning",
            "softmax without an explicit dim",
            "the implicit dim depends on the number of dimensions of the input",
            "name the dim",
        ),
    )
}


def selected(code: str, select: list[str] | None, ignore: list[str] | None) -> bool:
    """Whether ``code`` passes ``--select``/``--ignore`` (flake8 style: prefixes such as ``LMX1``).

    The longest matching prefix wins, so ``--select LMX1 --ignore LMX106`` keeps LMX101-LMX107
    except LMX106, and ``--ignore LMX1 --select LMX103`` keeps LMX103 only.
    """
    best_select = max((len(p) for p in select or [] if code.startswith(p)), default=-1)
    if select and best_select < 0:
        return False
    best_ignore = max((len(p) for p in ignore or [] if code.startswith(p)), default=-1)
    return best_ignore < 0 or best_select > best_ignore
