"""logmax.log_softmax against torch.log_softmax, scipy.special.log_softmax and jax (if installed).

uv run python benchmarks/bench_log_softmax.py [--quick]
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("log_softmax", __doc__.splitlines()[0]))
