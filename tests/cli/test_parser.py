"""kmsnb.cli._parser's help formatter: argparse's layout, wrapped without textwrap."""

from __future__ import annotations

import argparse
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsnb.cli import build_parser
from kmsnb.cli._parser import HelpFormatter, _wrap

# Words as help text has them: letters, digits, punctuation, hyphens, no spaces.
words = st.lists(st.text(alphabet="abcxyz019-/.,:$=()", min_size=1, max_size=30), max_size=40)


@given(words, st.integers(min_value=1, max_value=120))
def test_wrap_is_textwrap_without_breaking_words(parts: list[str], width: int) -> None:
    """The oracle is textwrap told to break neither on hyphens nor inside long words."""
    text = " ".join(parts)
    expected = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
    assert _wrap(text, width) == expected


@given(words, st.integers(min_value=1, max_value=120))
def test_wrapped_lines_fit_and_keep_every_word(parts: list[str], width: int) -> None:
    lines = _wrap(" ".join(parts), width)
    assert [word for line in lines for word in line.split(" ")] == parts
    assert all(len(line) <= width or " " not in line for line in lines)


def test_an_empty_text_has_no_lines() -> None:
    assert _wrap("", 10) == []


@pytest.mark.parametrize("columns", ["40", "80", "200"])
def test_help_matches_argparse_at_every_width(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    """Where no word is hyphenated or too long, ``kmsnb --help`` is argparse's own layout."""
    monkeypatch.setenv("COLUMNS", columns)

    class Reference(HelpFormatter):
        def _split_lines(self, text: str, width: int) -> list[str]:
            text = self._whitespace_matcher.sub(" ", text).strip()
            return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            text = self._whitespace_matcher.sub(" ", text).strip()
            return textwrap.fill(
                text, width, initial_indent=indent, subsequent_indent=indent,
                break_on_hyphens=False, break_long_words=False,
            )  # fmt: skip

    parser = build_parser()
    ours = parser.format_help()
    parser.formatter_class = Reference
    assert ours == parser.format_help()
    assert "show this help message and exit" in " ".join(ours.split())


def test_a_long_word_stays_whole() -> None:
    formatter = HelpFormatter("kmsnb", width=30)
    url = "https://kms.cn-hangzhou.aliyuncs.com/some/long/path"
    assert formatter._fill_text(f"see {url} for more", 30, "  ") == f"  see\n  {url}\n  for more"


def test_the_formatter_is_an_argparse_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    parser = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    parser.add_argument("--flag", help="word " * 40)
    assert all(len(line) <= 80 for line in parser.format_help().splitlines())
