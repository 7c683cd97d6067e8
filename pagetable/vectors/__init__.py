"""Test vectors for hardware bring-up: memory images, register values and expected translations.

`generate_riscv` builds a deliberate random address space and its cases; `VectorSet` writes and reads the
`pagetable-vectors/1` format (docs/vectors.md); `riscv.qemu` asks QEMU for its answer to each case.
"""

from .riscv.gen import generate_riscv
from .riscv.modes import VECTOR_MODES, walker_for
from .schema import SCHEMA, Case, VectorsError, VectorSet

__all__ = ["SCHEMA", "VECTOR_MODES", "Case", "VectorSet", "VectorsError", "generate_riscv", "walker_for"]
