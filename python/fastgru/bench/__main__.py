"""``python -m fastgru.bench``: the same as ``fastgru bench`` (and the harness's child processes)."""
import sys

from .cli import main

sys.exit(main())
