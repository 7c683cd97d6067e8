"""x86-64 test vectors (4-level and 5-level paging, nested paging; 32-bit and PAE paging, `gen32`): the vector
modes (`modes`), the generator (`gen`), the
physical layout every set shares (`layout`: RAM, the RAM tag, the slot left to a harness), the command
line's x86 part (`tool`), registered as `ARCHITECTURE` (`pagetable.registry`), and the QEMU probe harnesses
(`qemu`, with `stub.S` and `boot.S`; `qemu32` for 32-bit and PAE paging; `probes`: which one runs a set)."""

from ..architecture import Architecture
from . import modes, spec, tool
from .modes import ARCH, walker_for

ARCHITECTURE = Architecture(ARCH, "x86_64", tool.MODE_HELP, tool.add_generate_options, tool.generate, walker_for,
                            tool.REGISTERS, tool.explain, tool.readme_notes, attributes=True,
                            walker_from_registers=modes.walker_from_registers,
                            register_names=modes.REGISTER_NAMES, default_pa_bits=modes.PA_BITS, spec=spec.SPEC_ARCH)
