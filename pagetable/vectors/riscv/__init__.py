"""RISC-V test vectors: the vector modes (`modes`), the generator (`gen`), the QEMU harness (`qemu`) and the
command line's RISC-V part (`tool`), registered as `ARCHITECTURE` (`pagetable.registry`)."""

from ..architecture import Architecture
from . import modes, spec, tool
from .modes import walker_for

ARCHITECTURE = Architecture("riscv64", "riscv", tool.MODE_HELP, tool.add_generate_options, tool.generate,
                            walker_for, tool.REGISTERS, tool.explain, tool.readme_notes,
                            walker_from_registers=modes.walker_from_registers,
                            register_names=modes.REGISTER_NAMES, default_pa_bits=modes.PA_BITS, spec=spec.SPEC_ARCH)
