"""Argument types shared by the sub-commands (this module registers no command)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``argparse`` type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value
