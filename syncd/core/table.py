"""Plain-text tables for the command line: columns that fit a terminal width.

Role: lay out rows of cells under a header, shrinking the widest columns (cutting their cells
with "…") until a line fits ``width``; ``width=None`` keeps every cell whole (``--wide``).
Pure: it must not read the terminal size, print, or know what the cells mean.
"""

from __future__ import annotations

from collections.abc import Sequence

TERMINAL_WIDTH = 100
GAP = "  "
MIN_COLUMN = 6


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(0, width - 1)] + "…"


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = TERMINAL_WIDTH,
    keep: Sequence[int] = (),
) -> list[str]:
    """The header and rows as lines; with ``width``, no line is longer than it (as long as
    every column can keep ``MIN_COLUMN`` characters). Columns in ``keep`` (short ones such as a
    time) are never cut; the widest of the others gives way first."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    if width is not None:
        budget = width - len(GAP) * (len(widths) - 1)
        cuttable = [i for i in range(len(widths)) if i not in keep]
        while cuttable and sum(widths) > budget:
            widest = max(cuttable, key=lambda i: widths[i])
            if widths[widest] <= MIN_COLUMN:
                break
            widths[widest] -= 1
    last = len(widths) - 1
    return [
        GAP.join(
            _cut(c, widths[i]) if i == last else _cut(c, widths[i]).ljust(widths[i])
            for i, c in enumerate(r)
        ).rstrip()
        for r in table
    ]
