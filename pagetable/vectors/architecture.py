"""`Architecture`: what one architecture contributes to the command line and the vector tools (the entries
of `pagetable.registry`), and `check_register_names`, which each architecture's `walker_from_registers`
uses to refuse unknown and missing register names."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, PagetableError
from ..physmem import PhysMem
from ..walker import Walker
from .schema import VectorSet

if TYPE_CHECKING:
    from .build import SpecArch


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
    # `translate`'s walker from named register values (lower case), the memory and the PA width (None: the
    # architecture's `default_pa_bits`); the names it takes
    walker_from_registers: Callable[[PhysMem, dict[str, int], int | None], Walker] | None = None
    register_names: tuple[str, ...] = ()
    default_pa_bits: int = 52
    spec: SpecArch | None = None                          # `vectors build`'s part (None: not yet)


def check_register_names(regs: Mapping[str, int], known: Collection[str], required: Collection[str],
                         what: str) -> None:
    """InvalidArgument naming the first register of `regs` that is not in `known`, or the first of `required`
    missing (`what`: the translation that needs them, for the message)."""
    for name in regs:
        if name not in known:
            raise InvalidArgument(f"unknown register {name!r} for {what} (registers: {', '.join(known)})")
    for name in required:
        if name not in regs:
            raise InvalidArgument(f"register {name} is missing ({what} needs {', '.join(required)})")


def register_error(name: str, exc: PagetableError) -> InvalidArgument:
    """`exc` (from decoding register `name`) as an error whose message names the register first."""
    text = str(exc)
    return InvalidArgument(text if text.lower().startswith(name) else f"{name}: {text}")


def pa_bits_in(pa_bits: int | None, default: int, allowed: Collection[int], what: str) -> int:
    """`pa_bits` (None: `default`), checked against the widths `allowed`."""
    bits = default if pa_bits is None else pa_bits
    if type(bits) is not int or bits not in allowed:
        shown = ", ".join(map(str, sorted(allowed))) if len(allowed) < 10 else f"{min(allowed)} to {max(allowed)}"
        raise InvalidArgument(f"PA width {bits} bits: not {what} ({shown})")
    return bits
