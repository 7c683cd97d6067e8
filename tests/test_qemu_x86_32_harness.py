"""Tests of the QEMU x86 32-bit and PAE paging probe harness (pagetable/vectors/x86_64/qemu32.py, stub32.S).

Most need no QEMU: the registers a probe may choose, CPUID features, layout planning, the slot choice, the
stub's tables and data. Then 32-bit and PAE tables are built by hand here, from the bit tables of Intel SDM
Vol. 3A (4.3, Tables 4-4 to 4-6: P bit 0, R/W 1, U/S 2, PS 7 of a PDE, a 4 MiB page's PA bits 39:32 in PDE
bits 20:13 and bit 21 reserved; 4.4, Tables 4-7 to 4-11: the 32-byte aligned PDPT, PDPTE bits 2:1, 8:5 and
63:MAXPHYADDR reserved, 8-byte PDEs/PTEs with XD at bit 63 and bits 62:52 reserved), and QEMU's answers
(vector, error code, CR2, value) are checked exactly against what the SDM says (4.6 access rights, 4.7 the
#PF error code, 4.4.1 #GP at MOV to CR3), except where QEMU 7.2 departs from it: each such case names the
deviation (docs/qemu.md, "x86 32-bit and PAE paging"), so a QEMU that fixes one fails its test. The tests
that need ``qemu-system-x86_64`` or the binutils that assemble the stub (``binutils-x86-64-linux-gnu``) skip
without them, or fail when ``CI=true``.
"""

from __future__ import annotations

import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from pagetable.vectors import qemu as runner
from pagetable.vectors.x86_64 import qemu as x86
from pagetable.vectors.x86_64 import qemu32 as q
from pagetable.vectors.x86_64.layout import RAM_BASE, RAM_SIZE, tag
from pagetable.vectors.x86_64.qemu import ProbeResult, QemuLayout
from pagetable.vectors.x86_64.qemu32 import CpuFeatures32, ProbeCase32, Registers32

from .conftest import require_qemu_x86_32, require_toolchain_x86

MiB = 1 << 20
S, U = "supervisor", "user"

# Entry bits (SDM Vol. 3A Tables 4-4 to 4-11).
P, RW, US, PS = 1 << 0, 1 << 1, 1 << 2, 1 << 7
XD = 1 << 63
HIGH = q.HIGH_BASE                           # 4 GiB: RAM there for the runs given `high`
HIGH_SIZE = 4 * MiB

# -- registers and features ----------------------------------------------------------------------------------


def test_registers_are_real_register_values() -> None:
    r = Registers32.of()
    assert (r.cr0, r.cr4, r.efer, r.rflags, r.paging) == (0x8001_0033, 0x10, 0, 0x2, "32")
    r = Registers32.of("pae", wp=False, pse=False, nxe=True, smep=True, smap=True, ac=True, pge=True)
    assert (r.cr0, r.cr4, r.efer, r.rflags, r.paging) == (0x8000_0033, 0x30_00A0, 0x800, 0x4_0002, "pae")
    assert Registers32() == Registers32.of()


@pytest.mark.parametrize(("field", "value"), [("cr0", 0x0001_0033), ("cr0", 0x8001_003B), ("cr4", 0x1010),
                                              ("cr4", 0x40_0010), ("efer", 0x100), ("efer", 0x500),
                                              ("rflags", 0x202), ("rflags", 0)])
def test_registers_the_stub_cannot_run_are_refused(field: str, value: int) -> None:
    """CR0.PG missing or TS set, CR4.LA57 or PKE (IA-32e mode only), IA32_EFER.LME/LMA (not IA-32e mode here),
    EFLAGS.IF (no interrupt handlers) or without its fixed bit 1."""
    with pytest.raises(ValueError, match="is not one the probe stub runs with"):
        Registers32(**{field: value})


def test_paging_mode_names_are_checked() -> None:
    with pytest.raises(ValueError, match="paging must be one of"):
        Registers32.of("4-level")


def test_features_come_from_cpuid_and_name_what_is_missing() -> None:
    """CPUID.01H:EDX PSE (3), PAE (6), PGE (13), PSE-36 (17), MMX (23); leaf 7 EBX SMEP (7); without leaf
    0x80000008, MAXPHYADDR is 36 with PAE and 32 without (SDM Vol. 3A 4.1.4)."""
    f = CpuFeatures32.from_cpuid(leaf1_edx=1 << 3 | 1 << 6 | 1 << 17 | 1 << 23, leaf7_ebx=1 << 7, ext1_edx=0,
                                 ext8_eax=0)
    assert f == CpuFeatures32(maxphyaddr=36, pse=True, pae=True, pge=False, pse36=True, mmx=True, nx=False,
                              smep=True, smap=False)
    assert f.missing(Registers32.of("pae", nxe=True, smep=True, smap=True, pge=True)) == \
        ["CR4.PGE", "CR4.SMAP", "IA32_EFER.NXE"]
    assert CpuFeatures32.from_cpuid(1 << 3, 0, 1 << 20, 0x3028).maxphyaddr == 40
    assert CpuFeatures32.from_cpuid(1 << 3, 0, 0, 0).maxphyaddr == 32
    assert CpuFeatures32.from_cpuid(1 << 3, 0, 0, 0).missing(Registers32.of("pae")) == ["CR4.PAE"]


# -- layout, slot, the stub's tables -----------------------------------------------------------------------------


def test_plan_layout() -> None:
    require_toolchain_x86()
    assert q.plan_layout_32(RAM_SIZE, 100) == QemuLayout(ram_size=24 * MiB, stub_base=2 * MiB, stub_size=2 * MiB)
    assert q.plan_layout_32(1, 0).ram_size == RAM_BASE + 2 * MiB
    with pytest.raises(ValueError, match="split the run"):
        q.plan_layout_32(RAM_SIZE, 20_000)


def test_slot_base() -> None:
    assert q.slot_base_32(1023, "32") == 0xFFC0_0000
    assert q.slot_base_32(1, "32") == 0x40_0000
    assert q.slot_base_32(3, "pae") == 0xC000_0000


def test_slot_choice() -> None:
    """The highest slot no probe VA uses whose entry is 0, else the highest unused one: a PDE (4 MiB) under
    32-bit paging, a PDPTE (1 GiB) under PAE."""
    pd = bytes(4096)
    assert q.choose_slot_32(pd, RAM_BASE, [0x1000], "32") == 1023
    assert q.choose_slot_32(pd, RAM_BASE, [0xFFC0_0008, 0xFF80_0000], "32") == 1021
    used = struct.pack("<1024I", *([0] * 1022 + [0x1003, 0x1003]))
    assert q.choose_slot_32(used, RAM_BASE, [0], "32") == 1021
    full = struct.pack("<1024I", *([0x1003] * 1024))
    assert q.choose_slot_32(full, RAM_BASE, [0xFFC0_0000], "32") == 1022
    pdpt = struct.pack("<4Q", 0, 0x1001, 0, 0x2001) + bytes(4064)
    assert q.choose_slot_32(pdpt, RAM_BASE, [0x4000_0000], "pae") == 2
    assert q.choose_slot_32(pdpt, RAM_BASE, [0x8000_0000], "pae") == 0
    assert q.choose_slot_32(pdpt, RAM_BASE, [0, 0x8000_0000], "pae") == 3
    with pytest.raises(ValueError, match="all 4 PDPTE slots"):
        q.choose_slot_32(pdpt, RAM_BASE, [k << 30 for k in range(4)], "pae")


def _stub_memory(stub: x86.StubImage) -> tuple[bytes, dict[str, int]]:
    program = q.stub32_program()
    state = q._STATE.unpack(stub.blob, program.symbols["state"])
    return stub.blob, state


def _word(blob: bytes, pa: int, size: int) -> int:
    return int.from_bytes(blob[pa - q.STUB_BASE:][:size], "little")


@pytest.mark.parametrize("paging", ["32", "pae"])
def test_build_stub_maps_the_stub_at_its_alias_and_identity(paging: str) -> None:
    """The harness's root entry (PDE: P|R/W|U/S; PDPTE: P alone, its R/W and U/S being reserved) points at
    tables that map each stub page at slot base + PA (P|R/W, supervisor) and the user page at the slot base
    (P|U/S, read-only); the boot root has the same entry in slot 0 (identity) and in the slot."""
    require_toolchain_x86()
    layout = q.plan_layout_32(RAM_SIZE, 3)
    regs = Registers32.of(paging)
    cases = [ProbeCase32(0x4000_0008, a, p, regs) for a, p in (("read", S), ("write", U), ("execute", U))]
    slot = 1023 if paging == "32" else 3
    stub = q.build_stub_32(layout, RAM_BASE, cases, slot, paging)
    blob, state = _stub_memory(stub)
    boot = state["BOOT_CR3"]
    user_page = q.STUB_BASE + q.stub32_program().symbols["user_page"]
    assert state["ALIAS"] == q.slot_base_32(slot, paging)
    assert state["BOOT_CR4"] == (0x20 if paging == "pae" else 0)
    if paging == "32":
        entry = stub.root_entry
        assert entry & 0xFFF == P | RW | US
        assert _word(blob, boot, 4) == _word(blob, boot + 4 * slot, 4) == entry
        pt = entry & ~0xFFF
        assert _word(blob, pt, 4) == user_page | P | US                     # VA slot base: the user page
        assert _word(blob, pt + 4 * 0x21F, 4) == 0x21_F000 | P | RW          # VA slot base + 0x21F000
    else:
        entry = stub.root_entry
        assert entry & 0xFFF == P
        assert _word(blob, boot, 8) == _word(blob, boot + 8 * slot, 8) == entry
        pd = entry & ~0xFFF
        pt_user, pt_stub = _word(blob, pd, 8), _word(blob, pd + 8, 8)
        assert pt_user & 0xFFF == pt_stub & 0xFFF == P | RW | US
        assert _word(blob, pt_user & ~0xFFF, 8) == user_page | P | US
        assert _word(blob, (pt_stub & ~0xFFF) + 8 * 0x1F, 8) == 0x21_F000 | P | RW
    assert not _word(blob, boot + (4 if paging == "32" else 8), 4)            # nothing else mapped


@pytest.mark.parametrize("case", [ProbeCase32(4, "read", S), ProbeCase32(0, "fetch", S),
                                  ProbeCase32(0, "read", "kernel"), ProbeCase32(2**32, "read", S),
                                  ProbeCase32(0, "read", S, Registers32.of("pae"))])
def test_invalid_case_rejected(case: ProbeCase32) -> None:
    require_toolchain_x86()
    with pytest.raises(ValueError):
        q.build_stub_32(q.plan_layout_32(RAM_SIZE, 1), RAM_BASE, [case], 1023, "32")


def _fake_qemu(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_run_probes_refuses_bad_cr3(tmp_path: Path) -> None:
    exe = _fake_qemu(tmp_path, "exit 33\n")
    for paging in ("32", "pae"):
        with pytest.raises(ValueError, match="fields of CR3"):
            q.run_probes_32(bytes(8192), RAM_BASE | 1 << 32, [], paging=paging, qemu=exe)   # 32 bits only
    for cr3, paging in ((RAM_BASE | 0xFE7, "32"), (RAM_BASE | 0x1F, "pae")):   # ignored bits (Tables 4-3, 4-7)
        with pytest.raises(q.QemuFailed, match="stub output truncated"):         # pass to the (fake) QEMU run
            q.run_probes_32(bytes(8192), cr3, [], paging=paging, qemu=exe)
    with pytest.raises(ValueError, match="not inside the image"):
        q.run_probes_32(bytes(8192), RAM_BASE + 0x2000, [], paging="32", qemu=exe)
    with pytest.raises(ValueError, match="paging must be one of"):
        q.run_probes_32(bytes(8192), RAM_BASE, [], paging="64", qemu=exe)


def test_missing_qemu_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(q.QemuUnavailable, match="qemu-system-x86"):
        q.run_probes_32(bytes(4096), RAM_BASE, [], paging="32", qemu=str(tmp_path / "no-such-qemu"))


def test_missing_toolchain_raises_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(q.ToolchainUnavailable, match=r"x86_64-linux-gnu-as.*binutils-x86-64-linux-gnu"):
        q.assemble_stub32()


def test_require_qemu_skips_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without QEMU and binutils the QEMU tests skip, naming both packages, or fail when CI=true."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"qemu-system-x86_64 not found \(Debian package qemu-system-x86\)"
                       r".*binutils-x86-64-linux-gnu"):
        require_qemu_x86_32()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require_qemu_x86_32()


def test_a_triple_fault_is_named(tmp_path: Path) -> None:
    require_toolchain_x86()
    exe = _fake_qemu(tmp_path, "exit 0\n")
    with pytest.raises(q.QemuFailed, match=r"status 0 \(the guest reset: a triple fault"):
        q.run_probes_32(bytes(4096), RAM_BASE, [], paging="32", qemu=exe)


def test_no_output_raises(tmp_path: Path) -> None:
    require_toolchain_x86()
    exe = _fake_qemu(tmp_path, "exit 33\n")
    with pytest.raises(q.QemuFailed, match="truncated: 0 bytes"):
        q.run_probes_32(bytes(4096), RAM_BASE, [ProbeCase32(0, "read", S)], paging="32", qemu=exe)


def test_high_memory_goes_on_the_command_line(tmp_path: Path) -> None:
    """RAM below 4 GiB ends with the image (max-ram-below-4g), the rest is at 4 GiB, loaded with `high`."""
    command = x86.qemu_command("qemu", QemuLayout(24 * MiB, 2 * MiB, 2 * MiB), "tcg", "max", "/w", 4 * MiB)
    assert command[command.index("-M") + 1] == "pc,max-ram-below-4g=24M"
    assert command[command.index("-m") + 1] == "28M"
    assert "loader,file=/w/high.bin,addr=0x100000000,force-raw=on" in command
    plain = x86.qemu_command("qemu", QemuLayout(24 * MiB, 2 * MiB, 2 * MiB), "tcg", "max", "/w")
    assert plain[plain.index("-M") + 1] == "pc" and not any("high.bin" in arg for arg in plain)


# -- the assembled stub -------------------------------------------------------------------------------------------


def test_stub_is_what_the_harness_expects() -> None:
    require_toolchain_x86()
    program = q.stub32_program()
    sym = program.symbols
    assert len(program.code) == sym["state"] and sym["state"] % 8 == 0
    assert sym["user_page"] % 4096 == 0 and sym["isr_end"] - sym["isr_table"] == 32 * 16
    # the snippets (SDM Vol. 2): MOVQ mm0 <- [eax] (0F 6F 00), UD2 (0F 0B), MOVQ [eax] <- mm0 (0F 7F 00), UD2,
    # JMP eax (FF E0): 32-bit code, with 8-byte loads and stores
    snippets = program.code[sym["snip_read"]:sym["snip_fetch"] + 2]
    assert snippets == bytes.fromhex("0f6f00 0f0b 0f7f00 0f0b ffe0")
    assert q.stub32_program() is program


def test_stub_is_position_independent() -> None:
    require_toolchain_x86()
    assert q.assemble_stub32(0x8765_4000).code == q.stub32_program().code


def test_stub_source_needs_the_harness_symbols() -> None:
    require_toolchain_x86()
    with pytest.raises(q.ToolchainFailed, match=r"(?s)needs the harness's --defsym"):
        runner.assemble(x86.stub_source("stub32.S"), "stub32.S", prefix=x86.TOOLCHAIN_PREFIX,
                        package=x86.TOOLCHAIN_PACKAGE, as_flags=("--32",))


# -- the images --------------------------------------------------------------------------------------------------


def _tagged(base: int, size: int) -> bytearray:
    """``size`` bytes of RAM at ``base`` holding every u64's tag (PA << 8) | 0xCC."""
    words = (base + 8 * np.arange(size // 8, dtype=np.uint64)) << np.uint64(8) | np.uint64(0xCC)
    return bytearray(words.tobytes())


class Image:
    """An image of tags at RAM_BASE whose entries are poked in by hand."""

    def __init__(self) -> None:
        self.data = _tagged(RAM_BASE, RAM_SIZE)

    def table(self, pa: int) -> int:
        """Zero the 4 KiB table at ``pa``."""
        self.data[pa - RAM_BASE:pa - RAM_BASE + 4096] = bytes(4096)
        return pa

    def put(self, table: int, index: int, entry: int, size: int) -> None:
        struct.pack_into("<I" if size == 4 else "<Q", self.data, table - RAM_BASE + size * index, entry)


TABLES = RAM_BASE + 0x70_0000                # the tables, in the image's eighth MiB
PAGE1, PAGE2, PAGE3 = RAM_BASE + 0x1000, RAM_BASE + 0x2000, RAM_BASE + 0x3000
VA0, VA1, VA2, VA_NP = 0x4000_0008, 0x4000_1010, 0x4000_2018, 0x4000_3000   # the first table's pages 0-3
P1, P2, P3 = PAGE1 + 0x008, PAGE2 + 0x010, PAGE3 + 0x018
SMEP, SMAP = Registers32.of(smep=True), Registers32.of(smap=True)


def _page_table(img: Image, pt: int, size: int) -> None:
    """Pages 0-3: user read-write, supervisor read-only (XD in PAE), user read-only, not present."""
    img.table(pt)
    for index, entry in enumerate((PAGE1 | P | RW | US, PAGE2 | P | (XD if size == 8 else 0), PAGE3 | P | US)):
        img.put(pt, index, entry, size)


# 32-bit paging (SDM 4.3): the page directory and one page table; PDE k maps VA k << 22.
PD32, PT32 = TABLES, TABLES + 0x1000
BIG = RAM_BASE + 0x40_0000                   # a 4 MiB page (4 MiB aligned); its first page is also a page table
BIG_PT_PAGE = RAM_BASE + 0x5000              # what that page table maps at index 5
VA_4M = 0x4080_5008                          # PDE 258: the 4 MiB page at BIG
VA_PSE36 = 0x40C0_1008                       # PDE 259: a 4 MiB page at 4 GiB (PA bit 32 in PDE bit 13)
VA_RSVD21 = 0x4100_0008                      # PDE 260: the 4 MiB page at BIG with bit 21 set
VA_PSE36_BIT36 = 0x4140_0008                 # PDE 261: a 4 MiB page at 2**36 (PDE bit 17)
VA_PDE_RO, VA_PDE_S = 0x4180_0008, 0x41C0_0008   # PDEs 262, 263: the page table again, R/W=0 or U/S=0


def image_32() -> Image:
    img = Image()
    img.table(PD32)
    _page_table(img, PT32, 4)
    img.put(PD32, 256, PT32 | P | RW | US, 4)
    img.put(PD32, 258, BIG | P | RW | US | PS, 4)
    img.put(PD32, 259, 1 << 13 | P | RW | US | PS, 4)
    img.put(PD32, 260, BIG | 1 << 21 | P | RW | US | PS, 4)
    img.put(PD32, 261, 1 << 17 | P | RW | US | PS, 4)
    img.put(PD32, 262, PT32 | P | US, 4)
    img.put(PD32, 263, PT32 | P | RW, 4)
    img.table(BIG)
    img.put(BIG, 5, BIG_PT_PAGE | P | RW | US, 4)
    return img


NO_PSE = Registers32.of(pse=False)

# (id, case, expected): #PF error code bits P (0), W/R (1), U/S (2), RSVD (3), I/D (4).  TCG's reserved-bit
# #PF leaves P clear (SDM: P=1), as in 4-level paging ("reserved-bit error code" in docs/qemu.md).
EXPECTED_32: list[tuple[str, ProbeCase32, ProbeResult]] = [
    ("s_read_4k", ProbeCase32(VA0, "read", S), ProbeResult(None, 0, 0, tag(P1))),
    ("u_read_user", ProbeCase32(VA0, "read", U), ProbeResult(None, 0, 0, tag(P1))),
    ("u_write_user", ProbeCase32(VA0, "write", U), ProbeResult(None, 0, 0, tag(P1))),
    ("u_fetch_user", ProbeCase32(VA0, "execute", U), ProbeResult(None, 0, 0, VA0)),
    ("u_read_supervisor", ProbeCase32(VA1, "read", U), ProbeResult(14, 0x05, VA1, 0)),
    ("u_fetch_supervisor", ProbeCase32(VA1, "execute", U), ProbeResult(14, 0x05, VA1, VA1, VA1)),
    ("s_write_readonly_wp", ProbeCase32(VA1, "write", S), ProbeResult(14, 0x03, VA1, tag(P2))),
    ("s_write_readonly_no_wp", ProbeCase32(VA1, "write", S, Registers32.of(wp=False)),
     ProbeResult(None, 0, 0, tag(P2))),
    ("u_write_readonly", ProbeCase32(VA2, "write", U), ProbeResult(14, 0x07, VA2, tag(P3))),
    ("u_write_readonly_no_wp", ProbeCase32(VA2, "write", U, Registers32.of(wp=False)),
     ProbeResult(14, 0x07, VA2, tag(P3))),
    ("s_fetch_user_smep", ProbeCase32(VA0, "execute", S, SMEP), ProbeResult(14, 0x11, VA0, VA0, VA0)),
    ("s_fetch_user_no_smep", ProbeCase32(VA0, "execute", S), ProbeResult(None, 0, 0, VA0)),
    ("s_read_user_smap", ProbeCase32(VA0, "read", S, SMAP), ProbeResult(14, 0x01, VA0, 0)),
    ("s_read_user_smap_ac", ProbeCase32(VA0, "read", S, Registers32.of(smap=True, ac=True)),
     ProbeResult(None, 0, 0, tag(P1))),
    ("s_read_pte_not_present", ProbeCase32(VA_NP, "read", S), ProbeResult(14, 0x00, VA_NP, 0)),
    ("u_write_pde_not_present", ProbeCase32(0x4040_0000, "write", U), ProbeResult(14, 0x06, 0x4040_0000, 0)),
    # the rights of the PDE and the PTE combine (4.6): a read-only or supervisor PDE over a user RW page
    ("u_read_pde_readonly", ProbeCase32(VA_PDE_RO, "read", U), ProbeResult(None, 0, 0, tag(P1))),
    ("u_write_pde_readonly", ProbeCase32(VA_PDE_RO, "write", U), ProbeResult(14, 0x07, VA_PDE_RO, tag(P1))),
    ("s_write_pde_readonly_no_wp", ProbeCase32(VA_PDE_RO, "write", S, Registers32.of(wp=False)),
     ProbeResult(None, 0, 0, tag(P1))),
    ("u_read_pde_supervisor", ProbeCase32(VA_PDE_S, "read", U), ProbeResult(14, 0x05, VA_PDE_S, 0)),
    ("s_read_4k_pge", ProbeCase32(VA0, "read", S, Registers32.of(pge=True)), ProbeResult(None, 0, 0, tag(P1))),
    # I/D is set for a fetch with SMEP, or with PAE and NXE (4.7): not for 32-bit paging with NXE alone
    ("s_fetch_not_present_nxe", ProbeCase32(VA_NP, "execute", S, Registers32.of(nxe=True)),
     ProbeResult(14, 0x00, VA_NP, VA_NP, VA_NP)),
    ("s_fetch_not_present_smep", ProbeCase32(VA_NP, "execute", S, SMEP), ProbeResult(14, 0x10, VA_NP, VA_NP, VA_NP)),
    ("s_read_4m", ProbeCase32(VA_4M, "read", S), ProbeResult(None, 0, 0, tag(BIG + 0x5008))),
    ("u_fetch_4m", ProbeCase32(VA_4M, "execute", U), ProbeResult(None, 0, 0, VA_4M)),
    # CR4.PSE=0: PS is ignored, the PDE references a page table (at BIG)
    ("s_read_4m_pse_off", ProbeCase32(VA_4M, "read", S, NO_PSE), ProbeResult(None, 0, 0, tag(BIG_PT_PAGE + 8))),
    ("s_read_pse36", ProbeCase32(VA_PSE36, "read", S), ProbeResult(None, 0, 0, tag(HIGH + 0x1008))),
    ("u_write_pse36", ProbeCase32(VA_PSE36, "write", U), ProbeResult(None, 0, 0, tag(HIGH + 0x1008))),
    ("s_read_4m_reserved_21", ProbeCase32(VA_RSVD21, "read", S), ProbeResult(14, 0x08, VA_RSVD21, 0)),
    ("u_write_4m_reserved_21", ProbeCase32(VA_RSVD21, "write", U), ProbeResult(14, 0x0E, VA_RSVD21, 0)),
    # bit 21 of a PDE that references a page table is an address bit: the table at BIG + 2 MiB holds tags,
    # whose low half has P=0 (0xCC)
    ("s_read_reserved_21_pse_off", ProbeCase32(VA_RSVD21, "read", S, NO_PSE), ProbeResult(14, 0x00, VA_RSVD21, 0)),
    # MAXPHYADDR 40: PDE bit 17 is PA bit 36 (no RAM there: QEMU's pc machine reads 0)
    ("s_read_pse36_bit36", ProbeCase32(VA_PSE36_BIT36, "read", S), ProbeResult(None, 0, 0, 0)),
]


def _check(got: ProbeResult, expected: ProbeResult) -> None:
    if expected.vector is None:
        assert (got.vector, got.value) == (None, expected.value)
    else:
        assert (got.vector, got.error_code, got.cr2, got.value) == \
            (expected.vector, expected.error_code, expected.cr2, expected.value)
        assert expected.rip == 0 or got.rip == expected.rip     # a faulting fetch reports EIP = the VA


@pytest.fixture(scope="module")
def results_32() -> dict[str, ProbeResult]:
    exe = require_qemu_x86_32()
    run = q.run_probes_32(bytes(image_32().data), PD32, [c for _, c, _ in EXPECTED_32], paging="32",
                          high=bytes(_tagged(HIGH, HIGH_SIZE)), qemu=exe)
    assert run.slot == 1023 and run.features.maxphyaddr == 40 and run.features.pse36
    return {name: result for (name, _, _), result in zip(EXPECTED_32, run.results, strict=True)}


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, _, e in EXPECTED_32],
                         ids=[n for n, _, _ in EXPECTED_32])
def test_32bit_probe(results_32: dict[str, ProbeResult], name: str, expected: ProbeResult) -> None:
    _check(results_32[name], expected)


def test_the_image_changes_in_one_pde() -> None:
    exe = require_qemu_x86_32()
    image = bytes(image_32().data)
    run = q.run_probes_32(image, PD32, [], paging="32", qemu=exe)
    diff = np.flatnonzero(np.frombuffer(run.image, np.uint32) != np.frombuffer(image, np.uint32))
    assert [RAM_BASE + 4 * int(k) for k in diff] == [PD32 + 4 * 1023]


def test_pse36_bits_above_maxphyaddr_are_used_not_reserved() -> None:
    """With MAXPHYADDR 36, M = min(36, 40) = 36 and PDE bits 20:17 of a 4 MiB page are reserved (Table 4-4):
    the SDM's #PF with P|RSVD.  QEMU 7.2 reserves bit 21 alone (``rsvd_mask = 0x200000`` in mmu_translate)
    and takes bits 20:13 as PA bits 39:32 whatever phys-bits says: the page at 2**36 translates (no RAM
    there: it reads 0)."""
    exe = require_qemu_x86_32()
    run = q.run_probes_32(bytes(image_32().data), PD32, [ProbeCase32(VA_PSE36_BIT36, "read", S)], paging="32",
                          qemu=exe, cpu="max,phys-bits=36")
    assert run.features.maxphyaddr == 36
    _check(run.results[0], ProbeResult(None, 0, 0, 0))       # the SDM: ProbeResult(14, 0x09, VA, 0)


def test_qemu32_cpu_deviations() -> None:
    """On ``-cpu qemu32`` (no PSE-36, no CPUID leaf 0x80000008, so MAXPHYADDR 36 with PAE: SDM 4.1.4) QEMU
    7.2 departs from the SDM twice: PDE bits 20:13 of a 4 MiB page, reserved without PSE-36 (M = 32), are
    still PA bits 39:32 (mmu_translate reserves bit 21 alone); and its internal MAXPHYADDR is 32 (a CPU
    without long mode gets phys_bits 36 only with PSE-36, x86_cpu_realizefn), so a PAE page at 4 GiB is a
    reserved-bit #PF."""
    exe = require_qemu_x86_32()
    high = bytes(_tagged(HIGH, HIGH_SIZE))
    run = q.run_probes_32(bytes(image_32().data), PD32, [ProbeCase32(VA_PSE36, "read", S)], paging="32",
                          high=high, qemu=exe, cpu="qemu32")
    assert not run.features.pse36
    _check(run.results[0], ProbeResult(None, 0, 0, tag(HIGH + 0x1008)))    # the SDM: (14, 0x09, VA_PSE36, 0)
    run = q.run_probes_32(bytes(image_pae().data), PDPT, [ProbeCase32(0x4080_2008, "read", S, Registers32.of("pae"))],
                          paging="pae", high=high, qemu=exe, cpu="qemu32")
    assert run.features.maxphyaddr == 36
    _check(run.results[0], ProbeResult(14, 0x08, 0x4080_2008, 0))         # the SDM: tag(HIGH + 0x2008)


# PAE paging (SDM 4.4): the PDPT (4 entries, 1 GiB each), a page directory, one page table.
PDPT, PD_PAE, PT_PAE = TABLES, TABLES + 0x1000, TABLES + 0x2000
BIG2 = RAM_BASE + 0x20_0000                  # a 2 MiB page (2 MiB aligned)


def image_pae() -> Image:
    """PDPTE 1 -> the page directory (PDPTEs 0, 2, 3 not present); PDE k maps 0x4000_0000 + k * 2 MiB:
    0 the page table, 1 a 2 MiB page at BIG2, 2 the page table with bit 52 set (reserved in PAE), 3 not
    present, 4 a 2 MiB page at 4 GiB, 5 the 2 MiB page at BIG2 with bit 13 set (reserved), 6 the page table
    with PA bit 40 (= MAXPHYADDR) set, 7 the page table with XD."""
    img = Image()
    img.table(PDPT)
    img.table(PD_PAE)
    _page_table(img, PT_PAE, 8)
    img.put(PDPT, 1, PD_PAE | P, 8)
    table = PT_PAE | P | RW | US
    for index, entry in enumerate((table, BIG2 | P | RW | US | PS, table | 1 << 52, 0, HIGH | P | RW | US | PS,
                                   BIG2 | 1 << 13 | P | RW | US | PS, table | 1 << 40, table | XD)):
        img.put(PD_PAE, index, entry, 8)
    # a second PDPT, 32 bytes on: PDPTE 1 with a reserved bit, which each test writes
    img.data[PDPT + 32 - RAM_BASE:PDPT + 64 - RAM_BASE] = bytes(32)
    return img


def pae(**choices: bool) -> Registers32:
    return Registers32.of("pae", **{"nxe": True, **choices})


PAE_DEFAULT = pae()
EXPECTED_PAE: list[tuple[str, ProbeCase32, ProbeResult]] = [
    ("s_read_4k", ProbeCase32(VA0, "read", S, PAE_DEFAULT), ProbeResult(None, 0, 0, tag(P1))),
    ("u_write_user", ProbeCase32(VA0, "write", U, PAE_DEFAULT), ProbeResult(None, 0, 0, tag(P1))),
    ("u_fetch_user", ProbeCase32(VA0, "execute", U, PAE_DEFAULT), ProbeResult(None, 0, 0, VA0)),
    ("u_read_supervisor", ProbeCase32(VA1, "read", U, PAE_DEFAULT), ProbeResult(14, 0x05, VA1, 0)),
    ("s_write_readonly_wp", ProbeCase32(VA1, "write", S, PAE_DEFAULT), ProbeResult(14, 0x03, VA1, tag(P2))),
    ("s_write_readonly_no_wp", ProbeCase32(VA1, "write", S, pae(wp=False)), ProbeResult(None, 0, 0, tag(P2))),
    ("s_fetch_xd", ProbeCase32(VA1, "execute", S, PAE_DEFAULT), ProbeResult(14, 0x11, VA1, VA1, VA1)),
    # XD with IA32_EFER.NXE=0 is a reserved bit (SDM: P|RSVD = 0x09)
    ("s_read_xd_no_nxe", ProbeCase32(VA1, "read", S, pae(nxe=False)), ProbeResult(14, 0x08, VA1, 0)),
    ("s_fetch_user_smep", ProbeCase32(VA0, "execute", S, pae(smep=True)), ProbeResult(14, 0x11, VA0, VA0, VA0)),
    ("s_read_user_smap", ProbeCase32(VA0, "read", S, pae(smap=True)), ProbeResult(14, 0x01, VA0, 0)),
    ("s_read_2m", ProbeCase32(0x4020_1008, "read", S, PAE_DEFAULT), ProbeResult(None, 0, 0, tag(BIG2 + 0x1008))),
    # PAE's PS needs no CR4.PSE (4.4: CR4.PSE is ignored)
    ("s_read_2m_pse_off", ProbeCase32(0x4020_1008, "read", S, pae(pse=False)),
     ProbeResult(None, 0, 0, tag(BIG2 + 0x1008))),
    # XD in a PDE covers the pages of its table (4.6)
    ("s_read_pde_xd", ProbeCase32(0x40E0_0008, "read", S, PAE_DEFAULT), ProbeResult(None, 0, 0, tag(P1))),
    ("u_fetch_pde_xd", ProbeCase32(0x40E0_0008, "execute", U, PAE_DEFAULT),
     ProbeResult(14, 0x15, 0x40E0_0008, 0x40E0_0008, 0x40E0_0008)),
    ("u_fetch_2m", ProbeCase32(0x4020_1008, "execute", U, PAE_DEFAULT), ProbeResult(None, 0, 0, 0x4020_1008)),
    ("s_read_2m_above_4g", ProbeCase32(0x4080_2008, "read", S, PAE_DEFAULT),
     ProbeResult(None, 0, 0, tag(HIGH + 0x2008))),
    ("s_read_pde_reserved_52", ProbeCase32(0x4040_0008, "read", S, PAE_DEFAULT), ProbeResult(14, 0x08, 0x4040_0008, 0)),
    ("u_write_2m_reserved_13", ProbeCase32(0x40A0_0008, "write", U, PAE_DEFAULT),
     ProbeResult(14, 0x0E, 0x40A0_0008, 0)),
    ("s_read_pde_maxphyaddr", ProbeCase32(0x40C0_0008, "read", S, PAE_DEFAULT), ProbeResult(14, 0x08, 0x40C0_0008, 0)),
    ("s_read_pte_not_present", ProbeCase32(VA_NP, "read", S, PAE_DEFAULT), ProbeResult(14, 0x00, VA_NP, 0)),
    ("u_read_pde_not_present", ProbeCase32(0x4060_0000, "read", U, PAE_DEFAULT), ProbeResult(14, 0x04, 0x4060_0000, 0)),
    ("s_read_pdpte_not_present", ProbeCase32(0x1000, "read", S, PAE_DEFAULT), ProbeResult(14, 0x00, 0x1000, 0)),
    ("s_fetch_not_present_nxe", ProbeCase32(VA_NP, "execute", S, PAE_DEFAULT),
     ProbeResult(14, 0x10, VA_NP, VA_NP, VA_NP)),
    ("s_fetch_not_present_no_nxe", ProbeCase32(VA_NP, "execute", S, pae(nxe=False)),
     ProbeResult(14, 0x00, VA_NP, VA_NP, VA_NP)),
]


@pytest.fixture(scope="module")
def results_pae() -> dict[str, ProbeResult]:
    exe = require_qemu_x86_32()
    run = q.run_probes_32(bytes(image_pae().data), PDPT, [c for _, c, _ in EXPECTED_PAE], paging="pae",
                          high=bytes(_tagged(HIGH, HIGH_SIZE)), qemu=exe)
    assert run.slot == 3
    return {name: result for (name, _, _), result in zip(EXPECTED_PAE, run.results, strict=True)}


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, _, e in EXPECTED_PAE],
                         ids=[n for n, _, _ in EXPECTED_PAE])
def test_pae_probe(results_pae: dict[str, ProbeResult], name: str, expected: ProbeResult) -> None:
    _check(results_pae[name], expected)


@pytest.mark.parametrize("bit", [1, 2, 5, 8, 40, 52, 63])
def test_pdpte_with_a_reserved_bit(bit: int) -> None:
    """A present PDPTE with a reserved bit (2:1, 8:5, 63:MAXPHYADDR; Table 4-8): the SDM's #GP(0) at the
    MOV to CR3 (4.4.1), no access made.  QEMU 7.2's TCG loads no PDPTEs at MOV to CR3: it reads the PDPTE
    at every walk and checks bits 63:MAXPHYADDR alone, a reserved-bit #PF at the access (P clear, as every
    TCG reserved-bit #PF), and takes bits 2:1 and 8:5 as if clear (docs/qemu.md, "x86 32-bit and PAE
    paging")."""
    exe = require_qemu_x86_32()
    img = image_pae()
    img.put(PDPT + 32, 1, PD_PAE | P | 1 << bit, 8)
    cases = [ProbeCase32(VA0, "read", S, PAE_DEFAULT), ProbeCase32(VA0, "write", U, PAE_DEFAULT)]
    run = q.run_probes_32(bytes(img.data), PDPT + 32, cases, paging="pae", qemu=exe)
    sdm = [ProbeResult(13, 0, 0, 0, run.load_cr3)] * 2
    if bit >= 40:
        qemu = [ProbeResult(14, 0x08, VA0, 0), ProbeResult(14, 0x0E, VA0, 0)]
    else:
        qemu = [ProbeResult(None, 0, 0, tag(P1))] * 2
    assert run.results != sdm
    for got, expected in zip(run.results, qemu, strict=True):
        _check(got, expected)


def _serial_qemu(tmp_path: Path, output: bytes) -> str:
    """A QEMU that writes ``output`` to the serial file of its command line and exits as the stub does."""
    (tmp_path / "serial").write_bytes(output)
    return _fake_qemu(tmp_path, f"""for a in "$@"; do case "$a" in file,id=c0,path=*) out="${{a#*path=}}";; esac; done
cp {tmp_path / "serial"} "$out"
exit 33
""")


@pytest.mark.parametrize("cr3_read_back", [0, PDPT])
def test_a_gp_at_the_cr3_load_is_the_case_result(tmp_path: Path, cr3_read_back: int) -> None:
    """What the stub sends for cases whose MOV to CR3 #GPs (vector 13 at EIP load_cr3): their result, with
    CR3 never loaded (read back 0).  No judge here raises it (TCG does not check PDPTEs at the load, and
    this machine's KVM runs no 32-bit paging), so the output is the stub's, written by hand."""
    require_toolchain_x86()
    img = image_pae()
    load_cr3 = q.slot_base_32(3, "pae") + q.STUB_BASE + q.stub32_program().symbols["load_cr3"]
    header = q._HEADER.pack({"MAGIC": q._HEADER_MAGIC, "STATUS": 0, "COUNT": 1, "CR3": cr3_read_back,
                             "CPUID1_EDX": 1 << 3 | 1 << 6 | 1 << 23, "CPUID7_EBX": 0, "EXT1_EDX": 1 << 20,
                             "EXT8_EAX": 40})
    result = x86._RESULT.pack({"VECTOR": 13, "ERROR": 0, "CR2": 0, "RIP": load_cr3, "VALUE": 0})
    exe = _serial_qemu(tmp_path, header + result + struct.pack("<Q", x86._TRAILER_MAGIC))
    case = ProbeCase32(VA0, "read", S, PAE_DEFAULT)
    if cr3_read_back:
        with pytest.raises(q.QemuFailed, match=r"did not keep CR3 0x1700000 \(read back 0x1700000\)"):
            q.run_probes_32(bytes(img.data), PDPT, [case], paging="pae", qemu=exe)
        return
    run = q.run_probes_32(bytes(img.data), PDPT, [case], paging="pae", qemu=exe)
    assert run.load_cr3 == load_cr3 and run.results == [ProbeResult(13, 0, 0, 0, load_cr3)]


def test_cpu_models() -> None:
    """TCG_CPU (max, phys-bits=40) has every feature the cases use and PSE-36's widest MAXPHYADDR; QEMU's
    qemu32 has no PSE-36, NX, SMEP or SMAP and no CPUID leaf 0x80000008 (MAXPHYADDR 36, PAE being there)."""
    exe = require_qemu_x86_32()
    assert q.cpu_features_32(qemu=exe) == CpuFeatures32(maxphyaddr=40, pse=True, pae=True, pge=True, pse36=True,
                                                        mmx=True, nx=True, smep=True, smap=True)
    assert q.cpu_features_32(qemu=exe, cpu="qemu32") == CpuFeatures32(
        maxphyaddr=36, pse=True, pae=True, pge=True, pse36=False, mmx=True, nx=False, smep=False, smap=False)


def test_missing_cpu_features_fail() -> None:
    """A case that needs a feature the CPU lacks fails the run, naming it; so does PAE paging without PAE."""
    exe = require_qemu_x86_32()
    image = bytes(image_32().data)
    with pytest.raises(q.QemuFailed, match=r"does not implement CR4\.SMEP, IA32_EFER\.NXE, which cases set"):
        q.run_probes_32(image, PD32, [ProbeCase32(VA0, "read", U, Registers32.of(smep=True, nxe=True))],
                        paging="32", qemu=exe, cpu="qemu32")
    with pytest.raises(q.QemuFailed, match=r"does not implement PAE paging"):
        q.run_probes_32(bytes(image_pae().data), PDPT, [ProbeCase32(VA0, "read", U, PAE_DEFAULT)], paging="pae",
                        qemu=exe, cpu="qemu32,-pae")


A, D = 1 << 5, 1 << 6                        # accessed and dirty (SDM 4.8)


def test_accessed_and_dirty_flags_32bit() -> None:
    """The processor sets A in each PDE and PTE it uses and D in the PTE (or 4 MiB PDE) a write maps (SDM
    4.8): read back through supervisor pages mapping the page directory (PTE 4) and the page table (PTE 5)."""
    exe = require_qemu_x86_32()
    img = image_32()
    img.put(PT32, 4, PD32 | P, 4)
    img.put(PT32, 5, PT32 | P, 4)
    cases = [ProbeCase32(VA0, "write", U), ProbeCase32(VA_4M, "write", S),
             ProbeCase32(0x4000_4000 + 4 * 256, "read", S), ProbeCase32(0x4000_4000 + 4 * 258, "read", S),
             ProbeCase32(0x4000_5000, "read", S)]
    run = q.run_probes_32(bytes(img.data), PD32, cases, paging="32", qemu=exe)
    pde256, pde258, pde259 = PT32 | P | RW | US | A, BIG | P | RW | US | PS | A | D, 1 << 13 | P | RW | US | PS
    pte0, pte1 = PAGE1 | P | RW | US | A | D, PAGE2 | P
    assert [r.value for r in run.results] == [tag(P1), tag(BIG + 0x5008), pde256, pde258 | pde259 << 32,
                                             pte0 | pte1 << 32]


def test_accessed_flags_pae() -> None:
    """PAE: A in the PDE and PTE used, D in the PTE written (4.8); a PDPTE has no A flag (its bit 5 is
    reserved, Table 4-8: the processor loads PDPTEs into registers at MOV to CR3 and does not write them).
    QEMU 7.2 **sets bit 5 of the PDPTE** it walks (``mmu_translate`` sets PG_ACCESSED_MASK in the PAE PDPTE
    as in a 4-level PDPTE; docs/qemu.md)."""
    exe = require_qemu_x86_32()
    img = image_pae()
    for index, table in ((4, PDPT), (5, PD_PAE), (6, PT_PAE)):
        img.put(PT_PAE, index, table | P, 8)
    cases = [ProbeCase32(va, access, privilege, PAE_DEFAULT) for va, access, privilege in
             ((VA0, "write", U), (0x4000_4008, "read", S), (0x4000_5000, "read", S), (0x4000_6000, "read", S))]
    run = q.run_probes_32(bytes(img.data), PDPT, cases, paging="pae", qemu=exe)
    pdpte_sdm = PD_PAE | P
    assert [r.value for r in run.results] == [tag(P1), pdpte_sdm | A, PT_PAE | P | RW | US | A,
                                             PAGE1 | P | RW | US | A | D]
