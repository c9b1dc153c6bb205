"""Argument types shared by every ``gdyn`` subcommand (the one JSON argument parser)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def json_arg(text: str) -> Any:
    """argparse type for ``--settings '{...}'``: a JSON value passed by a rule."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text[:80]!r}") from None


def json_object(text: str) -> dict[str, Any]:
    """argparse type for a JSON object (``--inputs``, ``--systems``, ``--settings``)."""
    value = json_arg(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object, got {type(value).__name__}: {text[:80]!r}"
        )
    return value
