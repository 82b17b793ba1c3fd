"""`python -m vitzoo` is the `vitzoo` command."""

from vitzoo.cli import main

main()
