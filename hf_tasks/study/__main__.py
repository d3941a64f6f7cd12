import sys

from hf_tasks.study.cli import main

sys.exit(main())
