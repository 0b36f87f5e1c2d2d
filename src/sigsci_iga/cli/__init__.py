"""The `sigsci-iga` command line."""
