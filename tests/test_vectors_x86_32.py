"""The vector modes of x86 32-bit and PAE paging (x86-32, x86-32-pse36, x86-pae): determinism, coverage of
every #PF cause of each mode (SDM Vol. 3A 4.3, 4.4, 4.6, 4.7) at the levels it can, spot checks of the
expected outcomes against the SDM (error codes, PAs above 4 GiB, 4 MiB and 2 MiB pages, the memory types of
4.9.2), the registers and the harness's slot, the register choices, and the mode checks of `walker_for`
(CR4.PAE/PSE, IA32_EFER.LME, a PDPT that would #GP at the MOV to CR3)."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagetable.arch.x86_64 import CR4, PAT
from pagetable.arch.x86_64.pae import pdpte_reserved
from pagetable.cli import main
from pagetable.errors import InvalidArgument
from pagetable.vectors import VectorsError, VectorSet
from pagetable.vectors.schema import Case
from pagetable.vectors.x86_64.gen import PAT_VALUE, STUB_SLOT_32, RegisterChoices, generate_x86
from pagetable.vectors.x86_64.gen32 import LAST_PAGE, NO_RAM
from pagetable.vectors.x86_64.layout import RAM_BASE, RAM_SIZE, tag
from pagetable.vectors.x86_64.modes import CpuOptions, walker_for
from pagetable.walker import Access, Privilege

from .vectorsets import assert_100k_cases_fast, assert_edit_refused

MODES = ("x86-32", "x86-32-pse36", "x86-pae")
P, W, U, RSVD, ID = 1, 2, 4, 8, 16          # the #PF error code (SDM Vol. 3A Figure 4-12)
COMMON = {"user-rx", "user-rwx", "kernel-rx", "kernel-rwx", "unmapped-4k-user", "unmapped-4k-kernel",
          "kernel-last-page", "leaf-outside-ram-L1", "not-present-bits-L1", "table-outside-ram-L2", "unmapped-L2",
          "not-present-bits-L2", "upper-us0-L2", "upper-rw0-L2", *(f"pat{k}-" for k in range(8))}
ONLY = {"x86-32": {"rsvd-4M-bit21", "rsvd-4M-bits-20-13", "leaf-outside-ram-L2-4M"},
        "x86-32-pse36": {"rsvd-4M-bit21", "superpage-4M-above-4g", "leaf-outside-ram-L2-4M"},
        "x86-pae": {"user-ro", "user-rw", "kernel-ro", "kernel-rw", "upper-xd-L2", "rsvd-2M-bits",
                    "rsvd-maxphyaddr-L1", "rsvd-maxphyaddr-L2", "rsvd-62-52-L1", "rsvd-62-52-L2",
                    "superpage-2M-above-4g", "leaf-outside-ram-L2-2M"}}


def _labels(vs: VectorSet) -> set[str]:
    """The set's labels, a PAT label by its prefix (`pat3-`)."""
    return {c.label[:5] if c.label.startswith("pat") and c.label[3].isdigit() else c.label for c in vs.cases}


def _code(c: Case) -> int:
    """A fault's #PF error code."""
    assert c.syndrome is not None
    return c.syndrome["error_code"]


def _by(vs: VectorSet) -> dict[tuple[str, str, str], Case]:
    return {(c.label, c.access, c.privilege): c for c in vs.cases}


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_bytes_other_seed_other_bytes(mode: str, tmp_path: Path) -> None:
    for n in (1, 2):
        generate_x86(mode, 7).write(tmp_path / str(n), "readme\n")
    generate_x86(mode, 8).write(tmp_path / "3", "readme\n")
    for name in ("mem.bin", "vectors.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
        assert (tmp_path / "1" / name).read_bytes() != (tmp_path / "3" / name).read_bytes()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_cause_of_the_mode_is_a_target(mode: str, seed: int) -> None:
    """Each mode's targets, whatever the seed; the reasons at the levels the SDM puts them."""
    vs = generate_x86(mode, seed)
    labels = _labels(vs)
    assert COMMON | ONLY[mode] <= labels, sorted(COMMON | ONLY[mode] - labels)
    at = collections.defaultdict(set)
    for c in vs.cases:
        at[c.reason].add(c.level)
    pae = mode == "x86-pae"
    assert at["reserved"] == ({1, 2} if pae else {2})
    assert at["invalid"] == ({1, 2, 3} if any(c.label.endswith("-L3") and c.label != "table-outside-ram-L3"
                                               for c in vs.cases) else {1, 2})
    assert {1, 2} <= at["permission"]
    assert {c.label for c in vs.cases if c.label.startswith("superpage-") and "pat" not in c.label
            and "above" not in c.label} and at["ok"] == {None}
    assert all(c.va < 1 << 32 for c in vs.cases)
    assert not any(c.va >> (30 if pae else 22) == STUB_SLOT_32[8 if pae else 4] for c in vs.cases)


def test_the_seed_draws_the_structure() -> None:
    """The PAE spare PDPTE's role, the large pages' rights and the user window move with the seed."""
    roles = {next(c.label for c in generate_x86("x86-pae", s).cases if c.label.endswith("-L3")) for s in range(1, 7)}
    assert roles == {"unmapped-L3", "not-present-bits-L3", "table-outside-ram-L3"}
    rights = {frozenset(c.label for c in generate_x86("x86-pae", s).cases if c.label.startswith("superpage-2M-")
                        and ("user" in c.label or "kernel" in c.label)) for s in range(1, 5)}
    assert len(rights) > 1


def test_the_outcomes_are_the_sdms_32_bit() -> None:
    """32-bit paging (SDM 4.3, Table 4-4; 4.6; 4.7): error codes, no XD, the I/D bit with SMEP only."""
    by = _by(generate_x86("x86-32", 1))
    fault = by[("rsvd-4M-bit21", "read", "supervisor")]
    assert (fault.fault, fault.level, fault.syndrome) == ("page-fault", 2, {"error_code": P | RSVD, "cr2": fault.va})
    fault = by[("rsvd-4M-bits-20-13", "write", "user")]
    assert (fault.reason, _code(fault)) == ("reserved", P | W | U | RSVD)
    assert _code(by[("kernel-rx", "read", "user")]) == P | U
    assert _code(by[("kernel-rx", "write", "supervisor")]) == P | W         # CR0.WP=1
    assert _code(by[("user-rwx", "read", "supervisor")]) == P               # SMAP
    assert _code(by[("user-rwx", "execute", "supervisor")]) == P | ID       # SMEP
    assert _code(by[("unmapped-L2", "execute", "user")]) == U | ID
    assert _code(by[("unmapped-4k-user", "read", "user")]) == U
    ok = by[("kernel-rwx", "execute", "supervisor")]
    assert ok.fault is None and ok.pa is not None and RAM_BASE <= ok.pa < RAM_BASE + RAM_SIZE
    last = by[("kernel-last-page", "write", "supervisor")]
    assert LAST_PAGE <= last.va < 1 << 32 and last.fault is None
    assert _code(by[("upper-us0-L2", "read", "user")]) == P | U
    assert _code(by[("upper-rw0-L2", "write", "user")]) == P | W | U
    assert by[("table-outside-ram-L2", "read", "supervisor")].fault == "no-memory"
    leaf = by[("leaf-outside-ram-L1", "read", "supervisor")]
    assert (leaf.reason, leaf.pa) == ("pa-outside-memory", None)
    assert {c.memtype for c in by.values() if c.label.startswith("pat") and c.fault is None} == \
        {"wb", "wc", "uc-minus", "uc", "wp", "wt"}


def test_pse36_pages_above_4_gib_and_the_reserved_bits_of_maxphyaddr() -> None:
    """PSE-36 (Table 4-4): PDE bits 20:13 are PA bits 39:32, those at and above M - 19 reserved for M < 40."""
    vs = generate_x86("x86-32-pse36", 1)
    high = [c for c in vs.cases if c.label == "superpage-4M-above-4g"]
    assert {c.reason for c in high} == {"pa-outside-memory", "permission"}
    walked = walker_for(vs).beyond_ram().translate(high[0].va, Access.READ, Privilege.USER)
    assert walked.pa is not None and 1 << 32 <= walked.pa < 1 << 40
    assert RAM_BASE <= walked.pa & 0xFFFF_FFFF < RAM_BASE + RAM_SIZE           # the low 32 bits: the block's
    narrow = generate_x86("x86-32-pse36", 1, cpu=CpuOptions(maxphyaddr=36))
    rsvd = [c for c in narrow.cases if c.label == "rsvd-4M-bits-20-17"]
    assert rsvd and {c.reason for c in rsvd} == {"reserved"}
    assert "rsvd-4M-bits-20-17" not in _labels(vs)


def test_the_outcomes_are_the_sdms_pae() -> None:
    """PAE paging (SDM 4.4, Tables 4-8 to 4-11): XD with NXE, bits 62:52 and MAXPHYADDR reserved, the PDPTE
    has no rights (a fault there is at level 3), 2 MiB pages above 4 GiB."""
    vs = generate_x86("x86-pae", 5)
    by = _by(vs)
    assert _code(by[("kernel-rw", "execute", "supervisor")]) == P | ID
    assert _code(by[("upper-xd-L2", "execute", "user")]) == P | U | ID
    for label in ("rsvd-62-52-L1", "rsvd-62-52-L2", "rsvd-maxphyaddr-L1", "rsvd-maxphyaddr-L2", "rsvd-2M-bits"):
        c = by[(label, "read", "user")]
        assert (c.reason, _code(c), c.level) == ("reserved", P | U | RSVD, int(label[-1]) if
                                                                 label[-2] == "L" else 2)
    outside = by[("table-outside-ram-L3", "read", "supervisor")]
    assert (outside.fault, outside.level) == ("no-memory", 2)     # the PDE it cannot read
    high = walker_for(vs).beyond_ram().translate(by[("superpage-2M-above-4g", "read", "user")].va, Access.READ,
                                                 Privilege.USER)
    assert high.pa is not None and 1 << 32 <= high.pa < 1 << 40
    nxe0 = _by(generate_x86("x86-pae", 5, choice=RegisterChoices(nxe=False)))
    assert _code(nxe0[("kernel-rw", "read", "supervisor")]) == P | RSVD    # XD is reserved
    assert nxe0[("kernel-rwx", "read", "supervisor")].fault is None


@pytest.mark.parametrize("mode", MODES)
def test_registers_and_options(mode: str) -> None:
    vs = generate_x86(mode, 3, choice=RegisterChoices(ac=True, wp=False, nxe=True))
    pae = mode == "x86-pae"
    cr4 = CR4.build(PSE=int(not pae), PAE=int(pae), PGE=1, SMEP=1, SMAP=1)
    assert vs.registers == {"cr0": 0x8000_0001, "cr3": RAM_BASE, "cr4": cr4, "efer": 0x800 if pae else 0,
                            "pat": PAT_VALUE, "rflags": 0x4_0002}
    assert PAT.get(vs.registers["pat"], "PA1") == 1                 # WC
    assert vs.options == {"maxphyaddr": 40, "seed": 3}                 # no 1-GByte pages outside IA-32e mode
    by = _by(vs)
    assert by[("user-rwx", "read", "supervisor")].fault is None      # RFLAGS.AC: SMAP lets data through
    assert by[("kernel-rx", "write", "supervisor")].fault is None    # CR0.WP=0
    assert vs.mem.read_u64(RAM_BASE + RAM_SIZE - 8) == tag(RAM_BASE + RAM_SIZE - 8)


def test_100k_cases_are_fast() -> None:
    assert_100k_cases_fast(lambda n: generate_x86("x86-pae", 1, n))


def _pae_set_with(edit: dict[str, int]) -> VectorSet:
    vs = generate_x86("x86-pae", 1)
    return VectorSet(vs.arch, vs.mode, vs.mem, {**vs.registers, **edit}, vs.options, vs.cases)


def test_walker_for_checks_the_mode() -> None:
    with pytest.raises(VectorsError, match=r"select 32-bit paging, not x86-pae's pae"):
        walker_for(_pae_set_with({"cr4": CR4.build(PSE=1, SMEP=1)}))
    with pytest.raises(VectorsError, match=r"select ia32e paging"):
        walker_for(_pae_set_with({"efer": 0x900}))
    with pytest.raises(VectorsError, match=r"paging is off"):
        walker_for(_pae_set_with({"cr0": 1}))
    with pytest.raises(VectorsError, match=r"unknown key 'pkru' for mode x86-pae"):
        walker_for(_pae_set_with({"pkru": 0}))
    vs = generate_x86("x86-32", 1)
    bad = VectorSet(vs.arch, vs.mode, vs.mem, {**vs.registers, "cr4": CR4.build(PGE=1)}, vs.options, vs.cases)
    with pytest.raises(VectorsError, match=r"PSE=0: x86-32 has 4 MiB pages"):
        walker_for(bad)


def test_a_pdpt_that_would_gp_at_the_cr3_load_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SDM 4.4.1: loading CR3 with a present PDPTE that has a reserved bit #GPs: no access is made, so the
    set is refused (with the #GP named), not walked; `vectors check` and `verify --qemu` say so in one line."""
    vs = generate_x86("x86-pae", 1)
    pdpt = vs.registers["cr3"]
    present = next(pdpt + 8 * k for k in range(4) if vs.mem.read_u64(pdpt + 8 * k) & 1)
    vs.mem.write_u64(present, vs.mem.read_u64(present) | 1 << 5)
    assert pdpte_reserved(vs.mem.read_u64(present), 40) == 1 << 5
    with pytest.raises(VectorsError, match=r"#GP"):
        walker_for(vs)
    vs.write(tmp_path, "x\n")
    for argv in (["check"], ["verify", "--qemu"]):
        assert main(["vectors", argv[0], str(tmp_path), *argv[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert "MOV to CR3 0x1000000 would #GP" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_bad_set_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["registers"]["cr4"] = hex(CR4.build(PAE=1))
    assert_edit_refused(generate_x86("x86-32", 1), tmp_path, capsys, edit, "select pae paging, not x86-32's 32-bit")


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in ((["--no-nxe"], "x86-32 has no XD bit"),):
        assert main(["vectors", "generate", "--mode", "x86-32", "--seed", "1", "--out", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(InvalidArgument, match="MAXPHYADDR from 33 to 51"):
        generate_x86("x86-pae", 1, cpu=CpuOptions(maxphyaddr=32))
    assert NO_RAM < 1 << 32


def test_cli_generate_show_check_and_a_flipped_bit_of_a_4_byte_pte(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", "x86-32", "--seed", "5", "--formats", "all", "--out", str(out)]) == 0
    readme = (out / "README.txt").read_text()
    assert "PDE 768 (VA 0xc0000000)" in readme and "PML4 index" not in readme
    assert ".long " in (out / "tables.S").read_text() and "uint32_t pt_mem0" in (out / "tables.h").read_text()
    assert main(["vectors", "show", str(out)]) == 0
    assert "CR3: 32-bit paging (CR4.PSE=1), root table at 0x1000000" in capsys.readouterr().out
    assert main(["vectors", "check", str(out)]) == 0
    capsys.readouterr()
    vs = VectorSet.read(out)
    case = next(c for c in vs.cases if c.label == "user-rwx" and c.access == "write" and c.privilege == "user")
    pte = walker_for(vs).translate(case.va, Access.WRITE, Privilege.USER).pte
    image = np.fromfile(out / "mem.bin", dtype=np.uint32)
    (slot,) = np.flatnonzero(image == np.uint32(pte))
    image[slot] ^= np.uint32(2)                                                # R/W: the page becomes read-only
    image.tofile(out / "mem.bin")
    assert main(["vectors", "check", str(out)]) == 1
    report = capsys.readouterr().out
    assert f"{case.va:#x} write user" in report and not report.strip().endswith(" 0 failed")
