"""``python -m caroud`` is the ``caroud`` command."""

from caroud.cli import main

main()
