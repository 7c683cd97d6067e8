"""Test vectors for hardware bring-up: memory images, register values and expected translations.

`VectorSet` writes and reads the `pagetable-vectors/2` format (docs/vectors.md) and `expected_cases` computes
cases with a walker, for every architecture, as `Cases` (columns; each `Case` is built when asked for);
each architecture's generator and QEMU harness are in its package (`riscv`: `generate_riscv` builds a
deliberate random address space and its cases, `riscv.qemu` asks QEMU for its answer to each case;
`x86_64`: `generate_x86` for 4- and 5-level paging, `x86_64.layout` the conventions its harness shares;
`aarch64`: `generate_aarch64` for VMSAv8-64 stage 1 and stage 2).
"""

from ..walker import Walker
from .aarch64.gen import generate_aarch64
from .expected import expected_cases
from .riscv.gen import generate_riscv
from .schema import SCHEMA, Case, Cases, VectorsError, VectorSet
from .x86_64.gen import generate_x86


def walker_for(vs: VectorSet) -> Walker:
    """The walker that computes a vector set's expected results, by its architecture (`pagetable.registry`,
    which is built on this package)."""
    from ..registry import walker_for as by_arch
    return by_arch(vs)


__all__ = ["SCHEMA", "Case", "Cases", "VectorSet", "VectorsError", "expected_cases", "generate_aarch64",
           "generate_riscv", "generate_x86", "walker_for"]
