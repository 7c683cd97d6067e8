"""The architectures the command line and the vector tools know, in one registry.

Each architecture contributes one `Architecture` (its vector package builds it: `pagetable.vectors.riscv`,
`pagetable.vectors.x86_64`, `pagetable.vectors.aarch64`), so adding an architecture adds a package and an
entry in `ARCHITECTURES`, never a branch in the command line: `vectors generate --mode M` goes to the
architecture that has mode M, `vectors show/check` to the one a vector set's `arch` names, `explain --arch A`
to A.
"""

from __future__ import annotations

from . import args
from .vectors.architecture import Architecture
from .vectors.schema import VectorsError, VectorSet
from .walker import Walker

__all__ = ["ARCHITECTURES", "Architecture", "by_cli_name", "by_mode", "by_name", "walker_for"]


def _architectures() -> tuple[Architecture, ...]:
    from .vectors import aarch64, riscv, x86_64  # the architectures' packages build on this module
    return (riscv.ARCHITECTURE, x86_64.ARCHITECTURE, aarch64.ARCHITECTURE, riscv.ARCHITECTURE32)


ARCHITECTURES: tuple[Architecture, ...] = _architectures()


def by_name(name: str) -> Architecture:
    """The architecture a vector set's `arch` names (VectorsError listing the known ones otherwise)."""
    for arch in ARCHITECTURES:
        if arch.name == name:
            return arch
    raise VectorsError(f"arch {name!r} is not supported ({', '.join(a.name for a in ARCHITECTURES)})")


def by_mode(mode: str) -> Architecture:
    """The architecture whose vector modes include `mode`."""
    arch: Architecture = args.choice(mode, "vector mode", {m: a for a in ARCHITECTURES for m in a.modes})
    return arch


def by_cli_name(name: str) -> Architecture:
    arch: Architecture = args.choice(name, "architecture", {a.cli_name: a for a in ARCHITECTURES})
    return arch


def walker_for(vs: VectorSet) -> Walker:
    """The walker that computes a vector set's expected results, whatever its architecture."""
    return by_name(vs.arch).walker_for(vs)
