"""The x86-64 vector generator (x86_64-4level, x86_64-5level) and its command line: determinism, coverage of
every reason the walker gives on these modes at every level it can, spot checks of the expected outcomes
against the SDM (Vol. 3A 4.5-4.7, 4.9), the layout conventions the QEMU harness relies on, `vectors
check` catching one flipped entry bit, explain, clear errors, and golden digests."""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagetable.arch.x86_64 import CR0, CR4, EFER, PAT, RFLAGS
from pagetable.arch.x86_64.entry import RW
from pagetable.cli import main
from pagetable.errors import InvalidArgument
from pagetable.translation import MemoryType
from pagetable.vectors import VectorsError, VectorSet
from pagetable.vectors.schema import Case
from pagetable.vectors.x86_64 import layout
from pagetable.vectors.x86_64.gen import PAT_VALUE, RegisterChoices, generate_x86
from pagetable.vectors.x86_64.modes import VECTOR_MODES, CpuOptions, walker_for

from .vectorsets import assert_100k_cases_fast, assert_edit_refused

MODES = ("x86_64-4level", "x86_64-5level")
LEVELS = {"x86_64-4level": 4, "x86_64-5level": 5}
X86_REASONS = {"ok", "non-canonical", "table-outside-memory", "invalid", "reserved", "permission",
               "pa-outside-memory", "protection-key"}
"""Every reason the x86 walk rules give on 4- and 5-level paging (walk.py: W_WITHOUT_R, NON_LEAF_AT_LAST_LEVEL,
MISALIGNED_SUPERPAGE and ACCESSED_DIRTY are RISC-V's; x86 sets A and D itself)."""


def _by(vs: VectorSet) -> dict[tuple[str, str, str], Case]:
    """The cases of a full set by (label, access, privilege)."""
    return {(c.label, c.access, c.privilege): c for c in vs.cases}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_the_layout_conventions_are_fixed() -> None:
    """The values the QEMU harness is written to (docs/vectors.md)."""
    assert (layout.RAM_BASE, layout.RAM_SIZE, layout.STUB_SLOT) == (0x100_0000, 8 << 20, 255)
    assert layout.tag(0x123_4568) == 0x1_2345_68CC


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_bytes_other_seed_other_bytes(mode: str, tmp_path: Path) -> None:
    """The same seed gives the same files; other seeds other bytes and keys (tests/test_vectors_structure.py:
    other structure)."""
    for n in (1, 2):
        generate_x86(mode, 7).write(tmp_path / str(n), "readme\n")
    assert (tmp_path / "1" / "mem.bin").read_bytes() == (tmp_path / "2" / "mem.bin").read_bytes()
    assert (tmp_path / "1" / "vectors.json").read_text() == (tmp_path / "2" / "vectors.json").read_text()
    assert generate_x86(mode, 7).mem.regions[0].data.tobytes() != generate_x86(mode, 8).mem.regions[0].data.tobytes()
    assert len({generate_x86(mode, s, cases=1).registers["pkru"] for s in range(7, 12)}) > 1   # keys are drawn


def _level_in(labels: set[str], prefix: str) -> int:
    """The level in the one label `prefix`-L<n> of a set (the seed draws n)."""
    (label,) = [x for x in labels if x.startswith(prefix + "-L")]
    return int(label.removeprefix(prefix + "-L"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_every_reason_appears_at_every_level_it_can(mode: str, seed: int) -> None:
    vs = generate_x86(mode, seed)
    seen = collections.defaultdict(set)
    for c in vs.cases:
        seen[c.reason].add(c.level)
    top = LEVELS[mode]
    labels = {c.label for c in vs.cases}
    assert set(seen) == X86_REASONS
    assert seen["invalid"] == set(range(1, top + 1))           # not present at each level
    assert seen["reserved"] == set(range(1, top + 1))          # RSVD at each level
    assert seen["permission"] >= {1, 2, 3}                     # at 4 KiB, 2 MiB and 1 GiB pages
    assert seen["non-canonical"] == {top}
    assert seen["pa-outside-memory"] == {3, _level_in(labels, "leaf-outside-ram")}   # and the 1 GiB pages' part
    assert seen["table-outside-memory"] == {_level_in(labels, "table-outside-ram") - 1}
    assert seen["protection-key"] == {1, 2}
    for level in range(2, top + 1):
        assert {f"upper-us0-L{level}", f"upper-rw0-L{level}", f"upper-xd-L{level}",
                f"rsvd-maxphyaddr-L{level}"} <= labels
    assert {f"unmapped-L{n}" for n in range(2, top)} | {f"unmapped-L{top}-low", f"unmapped-L{top}-high"} <= labels
    assert {f"rsvd-ps-L{n}" for n in range(4, top + 1)} <= labels
    by = _by(vs)
    for half, sign in (("low", 0), ("high", 1)):                # the root's not-present entries, both halves
        c = by[f"unmapped-L{top}-{half}", "read", "supervisor"]
        assert (c.level, c.reason, c.va >> 63) == (top, "invalid", sign)


def _superpage_outcome(label: str, access: str, privilege: str) -> int | None:
    """The #PF error code (None: the access succeeds) of a 2 MiB or 1 GiB page whose label names its owner
    and rights (superpage-<size>-<user|kernel>-<rw|ro|rwx|rx>), with CR0.WP=1, SMEP, SMAP (RFLAGS.AC=0)
    and EFER.NXE=1 (SDM Vol. 3A 4.6.1)."""
    _, _, owner, rights = label.split("-")[:4]
    user_page, user = owner == "user", privilege == "user"
    denied = (user and not user_page) or (not user and user_page) or \
        (access == "write" and "w" not in rights) or (access == "execute" and "x" not in rights)
    if not denied:
        return None
    return 1 | (2 if access == "write" else 0) | (4 if user else 0) | (16 if access == "execute" else 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [3, 4])
def test_the_superpages_rights_are_the_sdms(mode: str, seed: int) -> None:
    """Each 2 MiB and 1 GiB page, with the owner and rights the seed drew, at every access and privilege;
    the two of each size in the two halves of the address space."""
    vs = generate_x86(mode, seed)
    pages = [c for c in vs.cases if c.label.startswith(("superpage-2M-user", "superpage-2M-kernel",
                                                        "superpage-1G-user", "superpage-1G-kernel"))
             and not c.label.endswith("beyond-ram")]
    assert len({c.label for c in pages}) == 4 and len(pages) == 24
    for size in ("2M", "1G"):                                  # of each size, one page in each half
        assert {c.va >> 63 for c in pages if f"-{size}-" in c.label} == {0, 1}
    for c in pages:
        want = _superpage_outcome(c.label, c.access, c.privilege)
        got = None if c.pa is not None else c.syndrome["error_code"] if c.syndrome else -1
        assert got == want, c
        assert c.level == (None if want is None else 2 if "-2M-" in c.label else 3), c


@pytest.mark.parametrize("mode", MODES)
def test_the_outcomes_are_the_sdms(mode: str) -> None:
    """Spot checks against SDM Vol. 3A 4.6 and 4.7: error codes P=1, W/R=2, U/S=4, RSVD=8, I/D=16, PK=32
    and CR2 = the linear address; #GP with no error code; the memory type of each PAT entry."""
    vs = generate_x86(mode, 3)
    by = _by(vs)
    labels = {c.label for c in vs.cases}

    def fault(label: str, access: str, privilege: str) -> tuple[str | None, int | None, int]:
        c = by[label, access, privilege]
        assert c.syndrome is not None and c.syndrome["cr2"] == (c.va if c.fault == "page-fault" else 0)
        return c.fault, c.level, c.syndrome["error_code"]

    pf = "page-fault"
    assert fault("user-ro", "write", "user") == (pf, 1, 0x7)                  # R/W=0
    assert fault("kernel-ro", "write", "supervisor") == (pf, 1, 0x3)          # CR0.WP=1
    assert fault("kernel-rw", "read", "user") == (pf, 1, 0x5)                 # U/S=0
    assert fault("kernel-rw", "execute", "supervisor") == (pf, 1, 0x11)       # XD with NXE
    assert fault("user-rx", "execute", "supervisor") == (pf, 1, 0x11)         # SMEP
    assert fault("user-rw", "read", "supervisor") == (pf, 1, 0x1)             # SMAP, RFLAGS.AC=0
    assert fault("upper-us0-L2", "read", "user") == (pf, 1, 0x5)              # U/S=0 above a user page
    assert fault("upper-rw0-L3", "write", "user") == (pf, 1, 0x7)
    assert fault("upper-xd-L2", "execute", "user") == (pf, 1, 0x15)
    assert fault("pkey-access-disabled", "read", "user") == (pf, 1, 0x25)     # PKRU.AD
    assert fault("pkey-write-disabled", "write", "user") == (pf, 1, 0x27)     # PKRU.WD
    assert fault("pkey-write-disabled-2M", "write", "user") == (pf, 2, 0x27)  # a key on a 2 MiB page
    assert fault("unmapped-L2", "write", "user") == (pf, 2, 0x6)              # P=0
    assert fault("rsvd-maxphyaddr-L1", "read", "supervisor") == (pf, 1, 0x9)
    assert fault("rsvd-2M-bits", "read", "user") == (pf, 2, 0xD)
    assert fault("rsvd-1G-bits", "execute", "supervisor") == (pf, 3, 0x19)
    assert fault("rsvd-ps-L4", "read", "supervisor") == (pf, 4, 0x9)                  # PS in a PML4E
    assert fault("non-canonical-low", "read", "user") == ("general-protection", LEVELS[mode], 0)
    (table,) = [x for x in labels if x.startswith("table-outside-ram-L")]
    assert fault(table, "read", "supervisor") == ("no-memory", int(table[-1]) - 1, 0)
    (bits,) = [x for x in labels if x.startswith("not-present-bits-L")]
    assert fault(bits, "write", "user") == (pf, int(bits[-1]), 0x6)           # P=0: the other bits ignored
    for ok in (("user-rw", "write", "user"), ("user-rx", "execute", "user"), ("kernel-rx", "execute", "supervisor"),
               ("pkey-access-disabled", "execute", "user"), ("pkey-allowed", "write", "user"),
               ("upper-us0-L3", "write", "supervisor")):
        assert by[ok].pa is not None and by[ok].fault is None, ok
    types = {c.label: c.memtype for c in vs.cases if c.label.startswith("pat") and c.pa is not None}
    assert types == {f"pat{k}-{t.label}": t.label for k, t in enumerate(
        (MemoryType.WB, MemoryType.WC, MemoryType.UC_MINUS, MemoryType.UC, MemoryType.WB, MemoryType.WP,
         MemoryType.UC_MINUS, MemoryType.WT))}
    assert by["user-rw", "read", "user"].perms == 0b011_000 and by["kernel-rx", "read", "supervisor"].perms == 0b101


@pytest.mark.parametrize("mode", MODES)
def test_registers_options_and_the_harness_conventions(mode: str) -> None:
    vs = generate_x86(mode, 4, cases=3000)
    r = vs.registers
    assert set(r) == {"cr0", "cr3", "cr4", "efer", "pat", "pkru", "rflags"}
    assert (CR0.get(r["cr0"], "PG"), CR0.get(r["cr0"], "WP")) == (1, 1)
    assert all(CR4.get(r["cr4"], f) for f in ("PAE", "PGE", "SMEP", "SMAP", "PKE"))
    assert CR4.get(r["cr4"], "LA57") == (mode == "x86_64-5level")
    assert all(EFER.get(r["efer"], f) for f in ("LME", "LMA", "NXE"))
    assert r["pat"] == PAT_VALUE and PAT.get(PAT_VALUE, "PA1") == 1            # WC at index 1
    assert RFLAGS.get(r["rflags"], "AC") == 0 and r["pkru"] != 0
    assert r["cr3"] >> 12 << 12 == vs.mem.regions[0].base                      # the first frame
    assert vs.options == {"maxphyaddr": 40, "gbpages": True, "seed": 4}
    assert (vs.mem.regions[0].base, vs.mem.regions[0].size) == (layout.RAM_BASE, layout.RAM_SIZE)
    va = vs.lanes()[0]
    assert not np.any(va % np.uint64(8))
    assert not np.any((va >> np.uint64(39)) & np.uint64(511) == layout.STUB_SLOT)
    assert not np.any((va >> np.uint64(48)) & np.uint64(511) == layout.STUB_SLOT)
    # a load reveals its PA (but in the 1 GiB pages, which map all of RAM, tables included)
    loads = [c.pa for c in vs.cases if c.pa is not None and c.access == "read" and "1G" not in c.label]
    assert len(loads) > 100 and all(vs.mem.read_u64(pa) == layout.tag(pa) for pa in loads)


def test_register_choices_change_the_expectations_not_the_image() -> None:
    base = generate_x86("x86_64-4level", 2)
    no_nxe = generate_x86("x86_64-4level", 2, choice=RegisterChoices(nxe=False))
    ac = generate_x86("x86_64-4level", 2, choice=RegisterChoices(ac=True))
    no_wp = generate_x86("x86_64-4level", 2, choice=RegisterChoices(wp=False))
    for other in (no_nxe, ac, no_wp):
        assert other.mem.regions[0].data.tobytes() == base.mem.regions[0].data.tobytes()
    assert _by(no_nxe)["kernel-ro", "read", "supervisor"].reason == "reserved"    # XD is reserved with NXE=0
    assert _by(no_nxe)["kernel-rx", "execute", "supervisor"].pa is not None
    assert _by(ac)["user-rw", "write", "supervisor"].pa is not None               # SMAP lets AC=1 through
    assert _by(ac)["user-rx", "execute", "supervisor"].reason == "permission"     # SMEP does not care
    assert _by(no_wp)["kernel-ro", "write", "supervisor"].pa is not None
    assert _by(no_wp)["user-ro", "write", "user"].reason == "permission"


def test_timing_and_counts() -> None:
    """A 100,000-case set is built and walked well within a second or two (the columns are never a list)."""
    assert_100k_cases_fast(lambda n: generate_x86("x86_64-5level", 1, cases=n))


def test_cli_generate_show_check_and_a_flipped_bit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", "x86_64-4level", "--seed", "5", "--out", str(out)]) == 0
    assert "cases for x86_64-4level (seed 5)" in capsys.readouterr().out
    readme = (out / "README.txt").read_text()
    assert "(PA << 8) | 0xCC" in readme and "PML4 index 255" in readme and "PA << 16" not in readme
    assert main(["vectors", "show", str(out), "--cases"]) == 0
    shown = capsys.readouterr().out
    assert "CR3: 4-level paging, root table at 0x1000000" in shown and "GLB" in shown
    assert "S:--- U:rw- wb" in shown and "page-fault at level 1 (protection-key)" in shown
    assert main(["vectors", "check", str(out)]) == 0
    total = len(VectorSet.read(out).cases)
    assert capsys.readouterr().out.strip().endswith(f"{total} passed, 0 failed")

    vs = VectorSet.read(out)
    case = next(c for c in vs.cases if c.label == "user-rw" and c.access == "write" and c.privilege == "user")
    pte = walker_for(vs).translate(case.va, "write", "user").pte
    image = np.fromfile(out / "mem.bin", dtype=np.uint64)
    (slot,) = np.flatnonzero(image == np.uint64(pte))
    image[slot] ^= np.uint64(RW)                                               # the page becomes read-only
    image.tofile(out / "mem.bin")
    assert main(["vectors", "check", str(out)]) == 1
    report = capsys.readouterr().out
    assert f"{case.va:#x} write user" in report and "perms, memtype" in report and " failed" in report
    assert not report.strip().endswith(" 0 failed")


def test_perms_and_memtype_round_trip_and_are_checked(tmp_path: Path) -> None:
    vs = generate_x86("x86_64-5level", 6, cases=400)
    vs.write(tmp_path, "x\n")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    ok = next(c for c in doc["cases"] if "pa" in c)
    assert ok["perms"].startswith("S:") and ok["memtype"] in {t.label for t in MemoryType}
    assert VectorSet.read(tmp_path).cases == vs.cases
    ok["perms"] = "S:rwz U:---"
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match=r"perms must be permissions"):
        VectorSet.read(tmp_path)
    ok["perms"], ok["memtype"] = "S:r-- U:---", "write-back"
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match=r"memtype must be one of"):
        VectorSet.read(tmp_path)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["registers"].update(cr4="0x7010a0"), "LA57=1: 5-level paging, not x86_64-4level"),
    (lambda d: d["registers"].update(cr4="0x17000a0"), "PKS=1"),
    (lambda d: d["registers"].update(cr0="0x10001"), "paging is off (CR0.PG=0)"),
    (lambda d: d["registers"].update(pat="0x2"), "reserved memory type"),
    (lambda d: d["registers"].pop("pkru"), "registers.pkru is missing"),
    (lambda d: d["registers"].update(satp="0x0"), "unknown key 'satp'"),
    (lambda d: d["options"].update(maxphyaddr=60), "maxphyaddr must be from 32 to 52"),
    (lambda d: d["options"].update(sum=True), "unknown key 'sum'"),
    (lambda d: d["cases"][0].update(stage=1), "applies to the two-stage modes"),
])
def test_bad_vector_sets_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             edit: Callable[[dict[str, Any]], object], message: str) -> None:
    assert_edit_refused(generate_x86("x86_64-4level", 1, cases=20), tmp_path, capsys, edit, message)


@pytest.mark.parametrize(("argv", "message"), [
    (["vectors", "generate", "--mode", "x86_64-4level", "--seed", "1", "--out", "{tmp}", "--sum"],
     "--sum is an option of the riscv64 modes, not of x86_64-4level"),
    (["vectors", "generate", "--mode", "sv39", "--seed", "1", "--out", "{tmp}", "--no-nxe"],
     "--no-nxe is an option of the x86_64 modes, not of sv39"),
    (["vectors", "generate", "--mode", "x86_64-5level", "--seed", "-3", "--out", "{tmp}"], "seed -3 is negative"),
    (["vectors", "generate", "--mode", "x86_64-5level", "--seed", "1", "--cases", "0", "--out", "{tmp}"],
     "the number of cases"),
    (["vectors", "generate", "--mode", "x86_64-3level", "--seed", "1", "--out", "{tmp}"], "invalid choice"),
    (["explain", "--arch", "x86_64", "--register", "satp", "1"], "x86_64 has no register 'satp'"),
    (["explain", "--arch", "x86_64", "--register", "pkru", "0x100000000"], "does not fit in 32 bits"),
    (["explain", "--arch", "x86_64", "-0x1"], "value -1 is negative"),
])
def test_bad_arguments_exit_2_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  argv: list[str], message: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:                           # argparse's own errors
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--arch", "x86_64", "0x8000000001234067"]) == 0
    out = capsys.readouterr().out
    assert "x86 PTE (maps a 4-KByte page)" in out and "XD       = 1" in out
    assert "-> as a PTE: page, S:rw- U:rw-" in out and "-> as a PML4E: reference to the next table" in out
    assert main(["explain", "--arch", "x86_64", "0x83"]) == 0                    # P, R/W, PS
    out = capsys.readouterr().out
    assert "x86 PDE (maps a 2-MByte page)" in out and "as a PML4E: page fault (reserved)" in out
    assert "as a PDE: page, S:rwx U:---" in out
    assert main(["explain", "--arch", "x86_64", "--register", "cr3", "0x1000018"]) == 0
    out = capsys.readouterr().out
    assert "PCD      = 1" in out and "PWT      = 1" in out and "at PA 0x1000000" in out
    assert main(["explain", "--arch", "x86_64", "--register", "pat", hex(PAT_VALUE)]) == 0
    assert "0-7: wb, wc, uc-minus, uc, wb, wp, uc-minus, wt" in capsys.readouterr().out
    assert main(["explain", "--arch", "x86_64", "--register", "pat", "0x0207040600070406"]) == 0
    assert "PA7 = 0x2 is a reserved memory type: loading it would #GP" in capsys.readouterr().out
    assert main(["explain", "--arch", "x86_64", "--register", "pkru", "0x420"]) == 0
    out = capsys.readouterr().out
    assert "keys access disabled: 5" in out and "keys write disabled: 2" in out
    for register, field in (("cr0", "WP       = 1"), ("cr4", "LA57     = 1"), ("efer", "NXE      = 1"),
                            ("rflags", "AC       = 1")):
        value = {"cr0": CR0.build(WP=1), "cr4": CR4.build(LA57=1), "efer": EFER.build(NXE=1),
                 "rflags": RFLAGS.build(AC=1)}[register]
        assert main(["explain", "--arch", "x86_64", "--register", register, hex(value)]) == 0
        assert field in capsys.readouterr().out, register


def test_cpu_options_are_checked() -> None:
    assert CpuOptions().to_json(VECTOR_MODES["x86_64-4level"]) == {"maxphyaddr": 40, "gbpages": True}
    assert CpuOptions().to_json(VECTOR_MODES["x86-pae"]) == {"maxphyaddr": 40}      # no 1-GByte pages there
    with pytest.raises(VectorsError, match="gbpages must be true or false"):
        CpuOptions.from_json({"gbpages": 1}, VECTOR_MODES["x86_64-4level"])
    with pytest.raises(VectorsError, match="gbpages"):
        CpuOptions.from_json({"gbpages": True}, VECTOR_MODES["x86-32"])
    with pytest.raises(InvalidArgument, match="maxphyaddr"):
        CpuOptions(maxphyaddr=31)
    for width in (39, 52):
        with pytest.raises(InvalidArgument, match="MAXPHYADDR from 40 to 51"):
            generate_x86("x86_64-4level", 1, cpu=CpuOptions(maxphyaddr=width))
    wide = generate_x86("x86_64-4level", 1, cpu=CpuOptions(maxphyaddr=46))
    assert wide.options["maxphyaddr"] == 46 and {c.reason for c in wide.cases} == X86_REASONS


GOLDEN = {  # mode: (mem.bin, vectors.json), seed 7, every target x access x privilege
    "x86_64-4level": ("9d8b83e01bc6d762", "e955d11c68a290e0"),
    "x86_64-5level": ("4fd1021339e3d220", "5bdff73c7aef79b5"),
}


@pytest.mark.parametrize("mode", MODES)
def test_the_same_seed_gives_the_same_bytes(tmp_path: Path, mode: str) -> None:
    """As tests/test_vectors_golden.py for RISC-V: a change here must be deliberate."""
    assert main(["vectors", "generate", "--mode", mode, "--seed", "7", "--out", str(tmp_path)]) == 0
    assert (_digest(tmp_path / "mem.bin"), _digest(tmp_path / "vectors.json")) == GOLDEN[mode]
