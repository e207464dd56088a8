"""`python -m walletsec`: the same entry point as the installed `walletsec` script."""

from walletsec.cli import main

main()
