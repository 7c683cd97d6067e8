"""AArch64 (VMSAv8-64) test vectors: the vector modes (`modes`: EL1&0 with each granule, 52-bit forms, EL2,
stage 2 alone and two stages), the generator (`gen`), the physical layout vector sets share with the QEMU
harness (`layout`: RAM, the RAM tag, the root-table slots left to the harness), the QEMU probe harness
(`qemu`, with `stub.S`) and the command line's AArch64 part (`tool`), registered as `ARCHITECTURE`
(`pagetable.registry`)."""

from ..architecture import Architecture
from . import modes, spec, tool
from .modes import ARCH, walker_for

ARCHITECTURE = Architecture(ARCH, "aarch64", tool.MODE_HELP, tool.add_generate_options, tool.generate, walker_for,
                            tool.REGISTERS, tool.explain, tool.readme_notes, attributes=True,
                            walker_from_registers=modes.walker_from_registers,
                            register_names=modes.REGISTER_NAMES, default_pa_bits=modes.PA_BITS, spec=spec.SPEC_ARCH)
