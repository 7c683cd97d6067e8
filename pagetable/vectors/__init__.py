"""Test vectors for hardware bring-up: memory images, register values and expected translations.

`generate_riscv` builds a deliberate random address space and its cases; `VectorSet` writes and reads the
`pagetable-vectors/1` format (docs/vectors.md); `qemu_riscv` asks QEMU for its answer to each case.
"""

from .riscv_gen import RISCV_MODES, generate_riscv
from .schema import SCHEMA, Case, VectorsError, VectorSet

__all__ = ["RISCV_MODES", "SCHEMA", "Case", "VectorSet", "VectorsError", "generate_riscv"]
