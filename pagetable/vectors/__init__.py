"""Test vectors for hardware bring-up: memory images, register values and expected translations.

`VectorSet` writes and reads the `pagetable-vectors/2` format (docs/vectors.md) and `expected_cases` computes
cases with a walker, for every architecture; each architecture's generator and QEMU harness are in its
package (`riscv`: `generate_riscv` builds a deliberate random address space and its cases, `riscv.qemu`
asks QEMU for its answer to each case).
"""

from .expected import expected_cases
from .riscv.gen import generate_riscv
from .riscv.modes import VECTOR_MODES, walker_for
from .schema import SCHEMA, Case, VectorsError, VectorSet

__all__ = ["SCHEMA", "VECTOR_MODES", "Case", "VectorSet", "VectorsError", "expected_cases", "generate_riscv",
           "walker_for"]
