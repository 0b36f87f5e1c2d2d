"""`python -m sigsci_iga` runs the CLI."""

from sigsci_iga.cli.app import main

main()
