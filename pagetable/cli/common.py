"""What every `pagetable` command shares: numbers as users write them, the parser that lets values like
-0x1 through as numbers, and writing many output lines."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9_]+)")


def number(text: str) -> int:
    """An integer written in ASCII: decimal, 0x hex, 0o octal or 0b binary (int() would also take other
    scripts' digits)."""
    shown = text if len(text) <= 40 else f"{text[:37]}..."
    if not NUMBER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not a number: {shown!r}")
    try:
        return int(text.strip(), 0)
    except ValueError:
        if len(text) > 4000:                        # more digits than Python converts (4,300)
            raise argparse.ArgumentTypeError(f"{shown!r} has {len(text)} digits: far more than any 64-bit "
                                             "value") from None
        raise argparse.ArgumentTypeError(f"not a number: {shown!r}") from None


NOTES_SHOWN = 20
"""A listing prints at most this many of the walk's notes (a corrupt table can have one per table)."""


def write_lines(lines: Iterable[str]) -> None:
    """Write `lines` to stdout, a few thousand at a time."""
    each = iter(lines)
    while chunk := list(itertools.islice(each, 4096)):
        sys.stdout.write("\n".join(chunk) + "\n")


class Parser(argparse.ArgumentParser):
    """argparse with values like -0x1 taken as (negative) numbers, not as unknown options, so that the
    command can say what is wrong with them; a usage error is one line, as every other error is."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("pagetable").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"pagetable: error: {where}{message} (pagetable {command + ' ' if command else ''}--help "
                     "lists the options)\n")
