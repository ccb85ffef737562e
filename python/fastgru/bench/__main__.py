"""``python -m fastgru.bench``: the same as ``fastgru bench``."""
import sys

from .cli import main

sys.exit(main())
