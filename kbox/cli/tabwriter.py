"""Go's text/tabwriter, as kubectl's describe uses it (minwidth 0, padding 2, spaces).

Cells end with a tab; the text after a line's last tab is not aligned. A
column is aligned over each run of consecutive lines that have a cell in
it, so sections separated by a line without tabs align independently. This
is what gives `describe` its shape, so it is reproduced exactly here.
"""

from __future__ import annotations


def render(text: str, padding: int = 2) -> str:
    """Align tab-separated `text` as Go's tabwriter.Writer(out, 0, 8, padding, ' ', 0) does."""
    trailing_nl = text.endswith("\n")
    lines = [ln.split("\t") for ln in (text[:-1] if trailing_nl else text).split("\n")]
    out: list[str] = [""] * len(lines)

    def write_lines(a: int, b: int, widths: list[int]) -> None:
        for i in range(a, b):
            cells = lines[i]
            parts = []
            for j, c in enumerate(cells):
                if j < len(widths):
                    parts.append(c.ljust(widths[j]))
                else:
                    parts.append(c)
            out[i] = "".join(parts)

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this, widths)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(line0, this, widths + [width])
            line0 = this
        write_lines(line0, line1, widths)

    fmt(0, len(lines), [])
    return "\n".join(out) + ("\n" if trailing_nl else "")
