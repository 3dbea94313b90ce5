"""The one progress bar of long stages (work units, ETA), on standard error."""

from __future__ import annotations

import sys


class Progress:
    """One overall bar (work units, ETA) across training, sweep and report."""

    def __init__(self, quiet: bool, desc: str) -> None:
        self.quiet, self.desc, self.bar, self.done = quiet, desc, None, 0.0

    def __enter__(self):
        return self

    def set_total(self, total: float) -> None:
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total, 1), desc=self.desc, unit="u", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {percentage:3.0f}% "
                            "[{elapsed}<{remaining}] {postfix}")

    def update(self, units: float, what: str = "") -> None:
        # the exact sum is kept here: rounding each of hundreds of small updates drifted past
        # the total; the bar gets the change of the (clamped) rounded sum
        self.done += units
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(round(min(self.done, self.bar.total), 1) - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
