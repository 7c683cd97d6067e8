"""Progress of long jobs (decompressing an image, walking or scanning a large one), shown on a terminal.

One place decides how progress looks: a tqdm bar on stderr, shown only when stderr is a terminal (tqdm's
`disable=None`), so that piped and captured output (scripts, tests) stays exactly the command's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tqdm import tqdm

__all__ = ["bar", "reading"]


def bar(total: int | None, what: str, unit: str = "B") -> tqdm[Any]:
    """A progress bar of `total` units (bytes by default, shown as KiB, MiB, ...) labelled `what`; use it as
    a context manager and `update(n)` it."""
    return tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "B", unit_divisor=1024 if unit == "B" else 1000,
                disable=None, leave=False, dynamic_ncols=True)


@contextmanager
def reading(f: IO[bytes], total: int, what: str) -> Iterator[IO[bytes]]:
    """`f`, whose reads advance a bar of `total` bytes while the context lasts."""
    with bar(total, what) as progress:
        read = f.read

        def counted(n: int = -1) -> bytes:
            data = read(n)
            progress.update(len(data))
            return data

        f.read = counted  # type: ignore[method-assign]
        try:
            yield f
        finally:
            f.read = read  # type: ignore[method-assign]
