"""``python -m core_connectors``: the ``core-connectors`` command."""

from ._cli import main

main()
