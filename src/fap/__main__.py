"""``python -m fap``: the same as the ``fap`` command."""

from fap.cli.app import main

main()
