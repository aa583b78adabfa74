"""``python -m core_connectors.server``: one worker of ``core-connectors serve --workers N``."""

import sys

from ._workers import worker_main

sys.exit(worker_main())
