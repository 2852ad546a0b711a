"""logmax.logsumexp against torch.logsumexp, scipy.special.logsumexp and jax (if installed).

uv run python benchmarks/bench_logsumexp.py [--quick]
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("logsumexp", __doc__.splitlines()[0]))
