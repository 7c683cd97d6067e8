"""RV32 ELF cores (qemu-system-riscv32's dump-guest-memory writes ELFCLASS32 EM_RISCV, target/riscv/arch_dump.c)
for `--arch riscv32`: read and walked with satp given (the notes hold no CSRs); `--arch riscv` refuses one,
as an RV32 hart's; `--cpu` says the core records no translation registers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagetable.cli import main
from pagetable.dump import write_elf_core

from .test_riscv_sv32_listing import ARGS, memory, refused, run


@pytest.mark.parametrize("elfclass", [32, 64])
def test_rv32_cores(elfclass: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    core = tmp_path / "core.elf"
    write_elf_core(core, memory(), "riscv32", elfclass=elfclass)
    assert run(capsys, ["translate", str(core), *ARGS, "0x1008"]) == [
        "0x0000000000001008 -> 0x80100008  S:rw- U:---  default  (level 0)"]
    riscv64 = ["translate", str(core), "--arch", "riscv", "--reg", "satp=0x8000000000080000", "0x1008"]
    if elfclass == 32:
        assert refused(capsys, riscv64) == (f"pagetable: error: {core} is an ELFCLASS32 EM_RISCV core, an RV32 "
                                            "hart's: give --arch riscv32\n")
    else:                   # qemu-system-riscv64 writes ELFCLASS64 for every hart: the class says nothing
        assert main(riscv64) == 0
        capsys.readouterr()
    assert refused(capsys, ["translate", str(core), "--arch", "riscv32", "--cpu", "0", "0x1008"]) == (
        "pagetable: error: --cpu: riscv32 cores record no translation registers (their notes hold the general "
        "registers only); give them with --reg\n")
