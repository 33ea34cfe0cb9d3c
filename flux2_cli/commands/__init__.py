"""The CLI commands: the only package (with cli.py) that imports Typer."""
