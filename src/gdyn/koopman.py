"""Stage module `gdyn.koopman` (being written; see DESIGN.md)."""

import argparse


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add this stage's subcommands to the `gdyn` CLI."""
