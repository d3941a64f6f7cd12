import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

import sys

from hf_tasks.errors import one_line_errors
from hf_tasks.study.cli import main

with one_line_errors():
    sys.exit(main())
