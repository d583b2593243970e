"""The command line's tables fit 100 columns unless asked to be wide."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.core import table

cells = st.text(alphabet=st.characters(codec="ascii", categories=("L", "N")), max_size=80)


@given(st.lists(st.tuples(cells, cells, cells, cells), max_size=6))
def test_every_line_fits_the_width(rows: list[tuple[str, str, str, str]]) -> None:
    lines = table.render(("a", "b", "c", "d"), rows)
    assert all(len(line) <= table.TERMINAL_WIDTH for line in lines)
    assert len(lines) == len(rows) + 1


def test_short_cells_stay_whole_and_long_ones_are_cut_visibly() -> None:
    long = "x" * 150
    _, row = table.render(("object", "change"), [("Campaign 001", long)])
    assert row.startswith("Campaign 001  ")
    assert row.endswith("…")
    assert len(row) == table.TERMINAL_WIDTH
    (_, wide) = table.render(("object", "change"), [("Campaign 001", long)], width=None)
    assert wide.endswith(long)
