"""Tests of the QEMU x86 probe harness (pagetable/vectors/x86_64/qemu.py) and its stubs (stub.S, boot.S).

Most need no QEMU: the shared u64 records (pagetable/vectors/qemu.py), the registers a probe may choose,
descriptors (Intel SDM Vol. 3A Figures 3-8, 6-8, 8-11), layout planning, the root-slot choice, the stub's
data and the parsing of its output. A hand-built 4-level table is then probed in QEMU (TCG) and every
answer checked against literal values from the SDM (4.6 access rights, 4.7 and 6.15 the #PF error code,
6.15 #GP for a non-canonical address): no walker involved. The tests that need ``qemu-system-x86_64`` or
the binutils that assemble the stubs (``binutils-x86-64-linux-gnu``) skip without them, or fail when
``CI=true``.
"""

from __future__ import annotations

import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from pagetable.arch.x86_64 import CR0, CR4, PAGING4, TABLE_ENTRY
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors import qemu as runner
from pagetable.vectors.x86_64 import qemu as q
from pagetable.vectors.x86_64.layout import IMAGE_SIZE, RAM_BASE, tag
from pagetable.vectors.x86_64.qemu import CpuFeatures, ProbeCase, ProbeResult, Registers

from .conftest import require_qemu_x86, require_toolchain_x86

MiB = 1 << 20
S, U = "supervisor", "user"

# -- the shared records (pagetable/vectors/qemu.py) ---------------------------------------------------------


def test_records_pack_unpack_and_name_their_offsets() -> None:
    rec = runner.Record("R", ("A", "B", "C"))
    assert rec.size == 24 and rec.offset("C") == 16
    assert rec.offsets() == {"R_A": 0, "R_B": 8, "R_C": 16, "R_SIZE": 24}
    raw = rec.pack({"C": 3, "A": 1, "B": 2**64 - 1})
    assert raw == struct.pack("<3Q", 1, 2**64 - 1, 3)
    assert rec.unpack(b"xx" + raw, 2) == {"A": 1, "B": 2**64 - 1, "C": 3}
    with pytest.raises(ValueError, match=r"\['C'\]"):
        rec.pack({"A": 1, "B": 2})
    with pytest.raises(ValueError, match="defined twice"):
        runner.defsyms(rec, R_A=5)
    assert runner.defsyms(rec, X=7) == {**rec.offsets(), "X": 7}
    assert runner.round_up(0, 8) == 0 and runner.round_up(9, 8) == 16


# -- registers -------------------------------------------------------------------------------------------------


def test_registers_are_real_register_values() -> None:
    r = Registers.of()
    assert (r.cr0, r.cr4, r.efer, r.rflags, r.pkru) == (0x8001_0033, 0x20, 0xD00, 0x2, 0)
    r = Registers.of(la57=True, wp=False, nxe=False, smep=True, smap=True, pke=True, ac=True, pkru=0xC)
    assert (r.cr0, r.cr4, r.efer, r.rflags, r.pkru) == (0x8000_0033, 0x70_1020, 0x500, 0x4_0002, 0xC)
    assert r.la57 and CR4.get(r.cr4, "SMAP") and not CR0.get(r.cr0, "WP")
    rules = r.rules(0x123_4000, 40, False)
    o = rules.options
    assert (o.wp, o.nxe, o.smep, o.smap, o.ac, o.pke, o.pkru, o.la57, o.maxphyaddr, o.gbpages) == \
        (False, False, True, True, True, True, 0xC, True, 40, False)


@pytest.mark.parametrize(("field", "value"), [("cr0", 0x8001_0021), ("cr0", 0x8001_003B), ("cr4", 0x20 | 1 << 7),
                                              ("cr4", 0), ("efer", 0x901), ("rflags", 0x202), ("pkru", 1 << 32)])
def test_registers_the_stub_cannot_run_are_refused(field: str, value: int) -> None:
    """CR0.NE missing or TS set, CR4.PGE (the CR3 reload would not flush global pages) or PAE missing,
    IA32_EFER.SCE, RFLAGS.IF (no interrupt handlers), a PKRU wider than 32 bits."""
    with pytest.raises(ValueError):
        Registers(**{field: value})


def test_features_come_from_cpuid_and_name_what_is_missing() -> None:
    f = CpuFeatures.from_cpuid(leaf7_ebx=1 << 7, leaf7_ecx=1 << 16, ext1_edx=1 << 26, ext8_eax=0x3028)
    assert f == CpuFeatures(maxphyaddr=40, gbpages=True, la57=True, smep=True, smap=False, pku=False)
    assert f.missing(Registers.of(smep=True, smap=True, pke=True)) == ["CR4.SMAP", "CR4.PKE"]
    assert f.missing(Registers.of(la57=True, smep=True)) == []


# -- descriptors (SDM Vol. 3A) ----------------------------------------------------------------------------------


def test_descriptors_are_the_sdm_encodings() -> None:
    """Figure 3-8 and 5.2.1: the flat 64-bit code segment is the well-known 0x00AF9B000000FFFF (accessed:
    the processor never writes the descriptor), 32-bit code 0x00CF9B..., DPL-3 data 0x00CFF3...; Figure
    6-8: a 64-bit interrupt gate; Figure 8-4 (16-byte form in IA-32e mode): a 64-bit TSS descriptor."""
    assert q.segment_descriptor(0xB, 0, long=True) == 0x00AF_9B00_0000_FFFF
    assert q.segment_descriptor(0xB, 0, big=True) == 0x00CF_9B00_0000_FFFF
    assert q.segment_descriptor(0x3, 3, big=True) == 0x00CF_F300_0000_FFFF
    assert q.gate_descriptor(0xFFFF_FF80_1234_5678, 0x08, 3) == (0x1234_EE00_0008_5678, 0xFFFF_FF80)
    assert q.system_descriptor(0xFFFF_FF80_0021_4100, 103, 9) == (0x0000_8921_4100_0067, 0xFFFF_FF80)


# -- layout and slot ------------------------------------------------------------------------------------------


def test_plan_layout() -> None:
    require_toolchain_x86()
    layout = q.plan_layout(IMAGE_SIZE, 100)
    assert layout == q.QemuLayout(ram_size=24 * MiB, stub_base=2 * MiB, stub_size=2 * MiB)
    assert q.plan_layout(1, 0).ram_size == RAM_BASE + 2 * MiB
    assert q.plan_layout(3 * MiB, 50_000).stub_size == 8 * MiB          # 136 bytes a case and result
    with pytest.raises(ValueError, match="split the run"):
        q.plan_layout(IMAGE_SIZE, 200_000)


def test_slot_base_is_canonical() -> None:
    assert q.slot_base(1, False) == 1 << 39
    assert q.slot_base(511, False) == 0xFFFF_FF80_0000_0000
    assert q.slot_base(256, True) == 0xFF00_0000_0000_0000
    assert q.slot_base(255, True) == 0x00FF_0000_0000_0000


def _root_image(entries: dict[int, int]) -> bytes:
    words = np.zeros(512, dtype=np.uint64)
    for k, v in entries.items():
        words[k] = v
    return words.tobytes() + bytes(4096)


def test_slot_choice() -> None:
    """The highest slot no canonical probe VA uses, preferring an empty entry; non-canonical VAs use none."""
    image = _root_image({511: 0x1003, 510: 0})
    assert q.choose_slot(image, RAM_BASE, [0x1000, 0xFFFF_FF80_0000_0000], False) == 510
    assert q.choose_slot(image, RAM_BASE, [0x1000, 0x0000_8000_0000_0000], False) == 510   # non-canonical
    full = _root_image(dict.fromkeys(range(512), 0x1003))
    assert q.choose_slot(full, RAM_BASE, [0], False) == 511           # no empty one: the highest unused
    assert q.choose_slot(_root_image({}), RAM_BASE, [0xFFFF_0000_0000_0000], True) == 510  # PML5 index 511
    with pytest.raises(ValueError, match="all 512 root-table slots"):
        q.choose_slot(image, RAM_BASE, [k << 39 for k in range(256)] + [q.slot_base(k, False) for k in range(256, 512)],
                      False)


# -- the stub's data and output, without QEMU ---------------------------------------------------------------


def _scene() -> tuple[PhysMem, PageTable]:
    """A 4-level table in the last MiB of an image of tags, mapping (VA -> PA, flags):
    0x4000_0000 -> +0x1000 user RWX, 0x4000_1000 -> +0x2000 supervisor read-only no-exec,
    0x4000_2000 -> +0x3000 user read-only no-exec; the rest unmapped."""
    mem = PhysMem([(RAM_BASE, IMAGE_SIZE)])
    mem.regions[0].words[:] = (RAM_BASE + 8 * np.arange(IMAGE_SIZE // 8, dtype=np.uint64)) << np.uint64(8) | \
        np.uint64(0xCC)
    tables = RAM_BASE + IMAGE_SIZE - MiB
    mem.fill(tables, MiB)
    pt = PageTable(PAGING4, mem, FrameAllocator(mem, tables, MiB))
    pt.map(0x4000_0000, RAM_BASE + 0x1000, 4096, F.READ | F.WRITE | F.EXECUTE | F.USER)
    pt.map(0x4000_1000, RAM_BASE + 0x2000, 4096, F.READ)
    pt.map(0x4000_2000, RAM_BASE + 0x3000, 4096, F.READ | F.USER)
    return mem, pt


def test_build_stub_maps_the_stub_in_its_slot_only() -> None:
    """The harness's root entry points at tables that map the stub at slot base + PA (supervisor, 2 MiB) and
    the user page at the slot base (U/S=1, read-only); the boot root also maps the stub where it is."""
    require_toolchain_x86()
    layout = q.plan_layout(IMAGE_SIZE, 3)
    cases = [ProbeCase(0x4000_0008, a, p) for a, p in (("read", S), ("write", U), ("execute", U))]
    stub = q.build_stub(layout, RAM_BASE, cases, 300, False)
    assert stub.root_entry & TABLE_ENTRY.mask("P", "R/W", "U/S") == TABLE_ENTRY.mask("P", "R/W", "U/S")
    mem = PhysMem([(q.STUB_BASE, layout.stub_size)])
    mem.write(q.STUB_BASE, stub.blob)
    from pagetable.arch.x86_64.walk import X86Rules
    from pagetable.walker import Walker
    code = q.stub_program()
    boot_root = int.from_bytes(stub.blob[code.symbols["state"] + q._STATE.offset("BOOT_CR3"):][:8], "little")
    walker = Walker(mem, X86Rules(boot_root))
    alias = q.slot_base(300, False)
    t = walker.translate(alias + q.STUB_BASE + 0x1234, "write", "supervisor")
    assert t.ok and t.pa == q.STUB_BASE + 0x1234
    assert walker.translate(q.STUB_BASE + 0x1234, "execute", "supervisor").pa == q.STUB_BASE + 0x1234
    user = walker.translate(alias + 8, "execute", "user")
    assert user.ok and user.pa == q.STUB_BASE + code.symbols["user_page"] + 8
    assert walker.translate(alias + 8, "write", "user").reason.label == "permission"
    assert walker.translate(alias + q.STUB_BASE, "read", "user").reason.label == "permission"
    assert mem.read_u64(boot_root + 8 * 300) == stub.root_entry


@pytest.mark.parametrize("case", [ProbeCase(4, "read", S), ProbeCase(0, "fetch", S), ProbeCase(0, "read", "kernel"),
                                  ProbeCase(2**64, "read", S), ProbeCase(0, "read", S, Registers.of(la57=True))])
def test_invalid_case_rejected(case: ProbeCase) -> None:
    require_toolchain_x86()
    with pytest.raises(ValueError):
        q.build_stub(q.plan_layout(IMAGE_SIZE, 1), RAM_BASE, [case], 300, False)


def test_run_probes_refuses_bad_cr3(tmp_path: Path) -> None:
    exe = _fake_qemu(tmp_path, "exit 33\n")
    with pytest.raises(ValueError, match="PCIDE"):
        q.run_probes(bytes(8192), RAM_BASE | 1, [], qemu=exe)
    with pytest.raises(ValueError, match="not inside the image"):
        q.run_probes(bytes(8192), RAM_BASE + 0x2000, [], qemu=exe)


def _fake_qemu(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_missing_qemu_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(q.QemuUnavailable, match="qemu-system-x86"):
        q.run_probes(bytes(4096), RAM_BASE, [], qemu=str(tmp_path / "no-such-qemu"))


def test_a_triple_fault_is_named(tmp_path: Path) -> None:
    """-no-reboot turns a guest reset into exit status 0, which is not the stub's 33."""
    require_toolchain_x86()
    exe = _fake_qemu(tmp_path, "exit 0\n")
    with pytest.raises(q.QemuFailed, match=r"status 0 \(the guest reset: a triple fault"):
        q.run_probes(bytes(4096), RAM_BASE, [], qemu=exe)


def test_no_output_raises(tmp_path: Path) -> None:
    require_toolchain_x86()
    exe = _fake_qemu(tmp_path, "exit 33\n")
    with pytest.raises(q.QemuFailed, match="truncated: 0 bytes"):
        q.run_probes(bytes(4096), RAM_BASE, [ProbeCase(0, "read", S)], qemu=exe)


def test_missing_toolchain_raises_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert q.missing_toolchain() == [f"x86_64-linux-gnu-{tool}" for tool in ("as", "ld", "objcopy", "nm")]
    with pytest.raises(q.ToolchainUnavailable, match=r"x86_64-linux-gnu-as.*binutils-x86-64-linux-gnu"):
        q.assemble_stub()


# -- the assembled stubs ---------------------------------------------------------------------------------------


def test_stubs_are_what_the_harness_expects() -> None:
    require_toolchain_x86()
    program = q.stub_program()
    sym = program.symbols
    assert len(program.code) == sym["state"] and sym["state"] % 8 == 0
    assert sym["user_page"] % 4096 == 0 and sym["isr_end"] - sym["isr_table"] == 32 * 16
    assert q.stub_program() is program
    rom = q.rom_program().code
    assert len(rom) == 0x10000 and rom[0xFFF0] == 0xE9        # the reset vector: a near JMP (SDM 10.1.4)


def test_stub_is_position_independent() -> None:
    """Linked elsewhere, the stub is the same bytes: the 32-bit part addresses everything from EBX, the 64-bit
    part RIP-relative (it runs identity-mapped, then at its alias)."""
    require_toolchain_x86()
    assert q.assemble_stub(0x8765_4000).code == q.stub_program().code


def test_stub_source_needs_the_harness_symbols() -> None:
    require_toolchain_x86()
    for name in ("stub.S", "boot.S"):
        with pytest.raises(q.ToolchainFailed, match=r"(?s)needs the harness's --defsym"):
            runner.assemble(runner.package_text(q.__name__, name), name, prefix=q.TOOLCHAIN_PREFIX,
                            package=q.TOOLCHAIN_PACKAGE)


# -- QEMU against the SDM, case by case ---------------------------------------------------------------------

VA0, VA1, VA2 = 0x4000_0008, 0x4000_1010, 0x4000_2018
P1, P2, P3 = RAM_BASE + 0x1008, RAM_BASE + 0x2010, RAM_BASE + 0x3018
SMEP_SMAP = Registers.of(smep=True, smap=True)

# (id, case, expected): #PF error code bits P (0), W/R (1), U/S (2), RSVD (3), I/D (4; with NXE), PK (5).
EXPECTED: list[tuple[str, ProbeCase, ProbeResult]] = [
    ("s_read", ProbeCase(VA0, "read", S), ProbeResult(None, 0, 0, tag(P1))),
    ("u_write", ProbeCase(VA0, "write", U), ProbeResult(None, 0, 0, tag(P1))),
    ("u_fetch", ProbeCase(VA0, "execute", U), ProbeResult(None, 0, 0, VA0)),
    ("s_fetch_user_smep", ProbeCase(VA0, "execute", S, SMEP_SMAP), ProbeResult(14, 0x11, VA0, VA0, VA0)),
    ("s_read_user_smap", ProbeCase(VA0, "read", S, SMEP_SMAP), ProbeResult(14, 0x01, VA0, 0)),
    ("s_read_user_smap_ac", ProbeCase(VA0, "read", S, Registers.of(smap=True, ac=True)),
     ProbeResult(None, 0, 0, tag(P1))),
    ("s_write_readonly_wp", ProbeCase(VA1, "write", S), ProbeResult(14, 0x03, VA1, tag(P2))),
    ("s_write_readonly_no_wp", ProbeCase(VA1, "write", S, Registers.of(wp=False)), ProbeResult(None, 0, 0, tag(P2))),
    ("u_read_supervisor", ProbeCase(VA1, "read", U), ProbeResult(14, 0x05, VA1, 0)),
    ("s_fetch_xd", ProbeCase(VA1, "execute", S), ProbeResult(14, 0x11, VA1, VA1, VA1)),
    # XD with EFER.NXE=0 is a reserved bit: the SDM's error code is P|RSVD (0x09); QEMU 7.2's TCG leaves P
    # clear (docs/qemu.md), which tests/test_qemu_x86_diff.py names and counts
    ("s_read_xd_no_nxe", ProbeCase(VA1, "read", S, Registers.of(nxe=False)), ProbeResult(14, 0x08, VA1, 0)),
    ("u_write_readonly", ProbeCase(VA2, "write", U), ProbeResult(14, 0x07, VA2, tag(P3))),
    ("u_read_unmapped", ProbeCase(0x4000_3000, "read", U), ProbeResult(14, 0x04, 0x4000_3000, 0)),
    ("s_fetch_unmapped_no_nxe", ProbeCase(0x4000_3000, "execute", S, Registers.of(nxe=False)),
     ProbeResult(14, 0x00, 0x4000_3000, 0x4000_3000, 0x4000_3000)),
    ("u_read_non_canonical", ProbeCase(0x0000_8000_0000_0000, "read", U), ProbeResult(13, 0, 0, 0)),
    ("u_read_key_ad", ProbeCase(VA0, "read", U, Registers.of(pke=True, pkru=1)), ProbeResult(14, 0x25, VA0, 0)),
    ("u_fetch_key_ad", ProbeCase(VA0, "execute", U, Registers.of(pke=True, pkru=1)), ProbeResult(None, 0, 0, VA0)),
]


@pytest.fixture(scope="module")
def tcg_results() -> dict[str, ProbeResult]:
    exe = require_qemu_x86()
    mem, pt = _scene()
    run = q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), pt.root_paddr, [c for _, c, _ in EXPECTED], qemu=exe)
    assert run.slot == 511 and run.features.maxphyaddr == 40
    return {name: result for (name, _, _), result in zip(EXPECTED, run.results, strict=True)}


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, _, e in EXPECTED], ids=[n for n, _, _ in EXPECTED])
def test_x86_probe(tcg_results: dict[str, ProbeResult], name: str, expected: ProbeResult) -> None:
    got = tcg_results[name]
    if expected.vector is None:
        assert (got.vector, got.value) == (None, expected.value)
    else:
        assert (got.vector, got.error_code, got.cr2, got.value) == \
            (expected.vector, expected.error_code, expected.cr2, expected.value)
        assert expected.rip == 0 or got.rip == expected.rip     # a faulting fetch reports RIP = the VA


def test_no_cases_and_cpu_features() -> None:
    exe = require_qemu_x86()
    f = q.cpu_features(qemu=exe)
    assert f == CpuFeatures(maxphyaddr=40, gbpages=True, la57=True, smep=True, smap=True, pku=True)
    assert q.cpu_features(qemu=exe, cpu="max,phys-bits=46").maxphyaddr == 46


def test_missing_cpu_features_fail() -> None:
    """A case that sets CR4.PKE on a CPU without PKU fails the run, naming the bit; so does LA57."""
    exe = require_qemu_x86()
    mem, pt = _scene()
    image = mem.read(RAM_BASE, IMAGE_SIZE)
    with pytest.raises(q.QemuFailed, match=r"does not implement CR4\.PKE"):
        q.run_probes(image, pt.root_paddr, [ProbeCase(VA0, "read", U, Registers.of(pke=True))], qemu=exe,
                     cpu="max,-pku")
    with pytest.raises(q.QemuFailed, match="5-level paging"):
        q.run_probes(image, pt.root_paddr, [ProbeCase(VA0, "read", U, Registers.of(la57=True))], qemu=exe,
                     cpu="max,-la57")


def test_timeout_raises() -> None:
    """A fetch into a page that loops forever (EB FE, jmp .) never ends the run."""
    exe = require_qemu_x86()
    mem, pt = _scene()
    mem.write(P1 - 8, bytes([0xEB, 0xFE]))
    with pytest.raises(q.QemuFailed, match="timed out"):
        q.run_probes(mem.read(RAM_BASE, IMAGE_SIZE), pt.root_paddr, [ProbeCase(VA0 - 8, "execute", S)], qemu=exe,
                     timeout=2)
