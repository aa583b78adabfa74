"""``python -m core_connectors.server``: one worker of ``core-connectors serve --workers N``."""

import sys

from .workers import worker_main

sys.exit(worker_main())
