"""`python -m netboot` is the `netboot` command."""

from netboot.cli import main

main()
