"""logmax.softmax against torch.softmax, scipy.special.softmax and jax (if installed).

uv run python benchmarks/bench_softmax.py [--quick]
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("softmax", __doc__.splitlines()[0]))
