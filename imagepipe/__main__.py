"""`python -m imagepipe` runs the same CLI as the console script."""

from imagepipe.cli import main

main()
