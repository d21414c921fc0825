"""`masking rescan`: (to be written)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `rescan` sub-command (not yet implemented: not registered)."""
    return None
