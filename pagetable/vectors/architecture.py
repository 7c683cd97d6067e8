"""`Architecture`: what one architecture contributes to the command line and the vector tools (the entries
of `pagetable.registry`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..walker import Walker
from .schema import VectorSet


@dataclass(frozen=True)
class Architecture:
    """One architecture's tools, as the command line drives them."""

    name: str                                             # a vector set's `arch` ("riscv64")
    cli_name: str                                         # `explain --arch` ("riscv")
    modes: Mapping[str, str]                              # vector mode -> what it translates (help text)
    add_generate_options: Callable[[argparse.ArgumentParser], None]
    generate: Callable[[argparse.Namespace], VectorSet]   # from `vectors generate`'s arguments
    walker_for: Callable[[VectorSet], Walker]             # the walker that computes a set's expectations
    registers: tuple[str, ...]                            # what `explain --register` names (first: default)
    explain: Callable[[str, int], list[str]]              # the lines `explain` prints
    readme_notes: Callable[[VectorSet], str]              # a vector set's README: levels, faults, syndromes, tags
    attributes: bool = False                              # translations record perms and memtype (x86_64)
