"""RISC-V test vectors: the vector modes (`modes`), the generator (`gen`), the QEMU harness (`qemu`) and the
command line's RISC-V part (`tool`), registered as `ARCHITECTURE` (`pagetable.registry`); and RV32 harts'
part (`rv32`: `--arch riscv32` for `explain` and the dump commands), registered as `ARCHITECTURE32`, whose
vector modes are none of its own (it adds no `vectors generate` options; its sets are riscv64's tool's)."""

from ..architecture import Architecture
from . import modes, rv32, spec, tool
from .modes import walker_for

ARCHITECTURE = Architecture("riscv64", "riscv", tool.MODE_HELP, tool.add_generate_options, tool.generate,
                            walker_for, tool.REGISTERS, tool.explain, tool.readme_notes,
                            walker_from_registers=modes.walker_from_registers,
                            register_names=modes.REGISTER_NAMES, default_pa_bits=modes.PA_BITS, spec=spec.SPEC_ARCH)

ARCHITECTURE32 = Architecture("riscv32", "riscv32", {}, lambda parser: None, tool.generate, walker_for, tool.REGISTERS,
                              tool.explain32, tool.readme_notes, walker_from_registers=rv32.walker_from_registers,
                              register_names=rv32.REGISTER_NAMES, default_pa_bits=rv32.PA_BITS)
