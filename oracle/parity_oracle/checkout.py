"""Where the parity checkout is, for the generators' default output paths.

Found from the current directory (or a given one) upwards, never from where
this package is installed: an installed oracle writes into the checkout it is
run in.
"""

from __future__ import annotations

import os
from pathlib import Path

# Files that together mark the root of a parity checkout.
MARKERS = ("Cargo.toml", "oracle/pyproject.toml")


class NotACheckout(Exception):
    """The directory is not inside a parity checkout."""


def find_checkout(start: str | os.PathLike | None = None) -> Path:
    """The root of the parity checkout that holds `start` (default: the
    current directory): the nearest directory, going up, with Cargo.toml and
    oracle/pyproject.toml."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        if all((d / m).is_file() for m in MARKERS):
            return d
    raise NotACheckout(f"{here} is not inside a parity checkout (no directory at or above it holds "
                       f"{' and '.join(MARKERS)})")
