"""`python -m bizsent` is the `bizsent` command."""

from bizsent.cli import main

main()
