"""logmax: softmax, log_softmax, logsumexp, nll_loss and cross_entropy done right."""

__version__ = "0.1.0"
