"""Small validation helpers shared by the config models."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def repeated(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (empty when all are unique)."""
    return sorted(v for v, n in Counter(values).items() if n > 1)
