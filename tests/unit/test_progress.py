"""The terminal and plain progress renderers, drawn into a string."""

from __future__ import annotations

import io

from stage0.progress import PlainProgress, TerminalProgress, human


def test_human_sizes_like_docker() -> None:
    assert [human(n) for n in (0, 999, 1000, 12_600_000, 3_200_000_000)] == \
        ["0B", "999B", "1.0kB", "12.6MB", "3.2GB"]


def test_terminal_lines_are_redrawn_in_place() -> None:
    out = io.StringIO()
    p = TerminalProgress(out, interval=0)
    p.item("aaa", "Waiting")
    p.item("bbb", "Waiting")
    p.item("aaa", "Downloading", 500, 1000)
    text = out.getvalue()
    # aaa is two lines up from the cursor: up 2, clear, draw, then down 1 to the bottom
    assert text.endswith("\x1b[2A\r\x1b[2Kaaa: Downloading     500B/1.0kB\n\x1b[1B")
    p.message("hello")
    assert out.getvalue()[len(text):] == \
        "\x1b[2A\r\x1b[2Khello\n\x1b[2Kaaa: Downloading     500B/1.0kB\n\x1b[2Kbbb: Waiting\n"


def test_terminal_throttles_byte_updates_but_not_state_changes() -> None:
    out = io.StringIO()
    p = TerminalProgress(out, interval=3600)
    p.item("aaa", "Downloading", 1, 10)
    p.item("aaa", "Downloading", 2, 10)  # too soon: not drawn
    assert "2B/10B" not in out.getvalue()
    p.item("aaa", "Download complete")
    assert out.getvalue().endswith("aaa: Download complete\n")


def test_plain_prints_state_changes_only() -> None:
    out = io.StringIO()
    p = PlainProgress(out)
    for done in (0, 5, 10):
        p.item("aaa", "Downloading", done, 10)
    p.item("aaa", "Download complete")
    p.message("done")
    assert out.getvalue() == "aaa: Downloading\naaa: Download complete\ndone\n"
