"""Command line: ``asdlib <command>``, one module per command; :func:`asdlib.cli.main.main` is the entry point."""
