"""Allow `python -m imagepipe.cli`."""

from imagepipe.cli import main

main()
