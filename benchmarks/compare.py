"""fastgru against PyTorch, Keras/TensorFlow and ONNX Runtime on the same weights.

    python benchmarks/compare.py                      # every workload, 1 thread and all cores
    python benchmarks/compare.py --quick              # tiny sizes: checks the harness only
    python benchmarks/compare.py --workloads B,C --threads 1 --json out.json --plot out.png

Same as ``fastgru bench``; see benchmarks/README.md and ``--help``.
"""
from __future__ import annotations

import os
import sys

try:
    import fastgru.bench  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # running from a source checkout whose extension was built in place
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from fastgru.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
