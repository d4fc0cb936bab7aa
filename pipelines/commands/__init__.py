"""Subcommands of the ``ews`` command line, one module per area; ``pipelines.cli`` registers them."""
