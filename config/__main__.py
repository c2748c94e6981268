"""``python -m config``: the same CLI as the ``callrec`` console script."""

from config.cli import main

main()
