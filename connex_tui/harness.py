"""What tests and `bench/` change in the interface, in one object: `Harness`.

The product runs with `Harness()`, whose defaults are what a person gets: inputs blink, a display
error becomes a toast, every screen is composed at start-up, nothing is counted. A test or a
benchmark hands its own to `ConnexApp(harness=...)`:

* `cursor_blink=False` - inputs do not blink (stable snapshots);
* `strict=True` - a display error raises instead of being notified (a test sees the bug);
* `warm_up=False` - start-up does not compose every screen (half a second less per test);
* `counting=True` - `count()` records events a test waits on or asserts (`loads` of a screen,
  `older_pages` of the SKU log, `full_rebuilds` and `cell_updates` of a table); read them with
  `counted()`.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Harness:
    cursor_blink: bool = True
    strict: bool = False
    warm_up: bool = True
    counting: bool = False
    _counts: weakref.WeakKeyDictionary[Any, Counter[str]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False, compare=False
    )

    def count(self, owner: object, what: str) -> None:
        """One more `what` of `owner` (a screen, a table); nothing unless counting."""
        if self.counting:
            self._counts.setdefault(owner, Counter())[what] += 1

    def counted(self, owner: object, what: str) -> int:
        counts = self._counts.get(owner)
        return counts[what] if counts is not None else 0


PRODUCT = Harness()  # what an App without a harness of its own (or a widget outside one) uses


def harness_of(app: object) -> Harness:
    """The harness of a `ConnexApp`; the product's for any other App (a widget tried alone)."""
    harness = getattr(app, "harness", None)
    return harness if isinstance(harness, Harness) else PRODUCT
