"""The command line (typer app in ``main``)."""
