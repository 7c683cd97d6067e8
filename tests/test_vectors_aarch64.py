"""The AArch64 vector generator and its command line: every mode generates and checks, the same seed gives
the same bytes, each mode covers the fault kinds and levels its rules can give (two stages: stage 2 faults
of stage 1 table reads, S1PTW), spot checks of outcomes and syndromes against the Arm ARM (D8.4, D24 ESR),
the layout conventions a harness relies on, `vectors check` catching a flipped descriptor bit, the walker
rebuilt from the registers refusing values that select another translation, and explain."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagetable.arch.aarch64 import SCTLR_EL1, TCR_EL1, VTCR_EL2
from pagetable.arch.aarch64.codec import AP_RO, CONTIGUOUS, CONTIGUOUS_ENTRIES, S2AP_W
from pagetable.arch.aarch64.modes import concatenated
from pagetable.arch.aarch64.walk import ESR_S1PTW, ESR_WNR
from pagetable.cli import main
from pagetable.vectors import VectorSet
from pagetable.vectors.aarch64.gen import RAM_BASE, RAM_SIZE, generate_aarch64, reserved_slot, tag
from pagetable.vectors.aarch64.modes import VECTOR_MODES, walker_for
from pagetable.vectors.aarch64.tool import REGISTERS

from .vectorsets import assert_100k_cases_fast, assert_edit_refused

MODES = tuple(VECTOR_MODES)
_T, _AS, _AF, _P, _EA = "translation", "address-size", "access-flag", "permission", "external-abort"


def _levels(kind: str, levels: range | tuple[int, ...], stage: int = 1, implicit: bool = False) -> set[
        tuple[str, int, int, bool]]:
    return {(kind, level, stage, implicit) for level in levels}


_COMMON = _levels(_T, range(0, 4)) | _levels(_AF, (2, 3))
COVERAGE = {  # mode: every (fault kind, level, stage, implicit) its full set has, but what `_drawn` adds
    "aarch64-4k-48": _COMMON | _levels(_AF, (1,)) | _levels(_AS, range(0, 4)) | _levels(_P, (1, 2, 3)),
    "aarch64-4k-39": _COMMON | _levels(_AF, (1,)) | _levels(_AS, (1, 2, 3)) | _levels(_P, (1, 2, 3)),
    "aarch64-16k-47": _COMMON | _levels(_AS, (1, 2, 3)) | _levels(_P, (2, 3)),
    "aarch64-64k-48": _COMMON | _levels(_AS, (1, 2, 3)) | _levels(_P, (2, 3)),
    # 52-bit IPS: no Address size faults, and an External abort at a page above 2**48
    "aarch64-64k-52": _COMMON | _levels(_AF, (1,)) | _levels(_P, (1, 2, 3)) | _levels(_EA, (3,)),
    "aarch64-4k-52-lpa2": _COMMON | _levels(_AF, (0, 1)) | _levels(_T, (-1,)) | _levels(_P, range(0, 4))
    | _levels(_EA, (3,)),
    "aarch64-el2-4k-48": _COMMON | _levels(_AF, (1,)) | _levels(_AS, range(0, 4)) | _levels(_P, (1, 2, 3)),
    "aarch64-s2-4k-40": _COMMON | _levels(_AF, (1,)) | _levels(_AS, (1, 2, 3)) | _levels(_P, (3,)),
    "aarch64-4k-48+s2-4k-40": _COMMON | _levels(_AF, (1,)) | _levels(_AS, range(0, 4)) | _levels(_P, (1, 2, 3))
    | _levels(_T, (1, 2, 3), 2) | _levels(_T, (1, 3), 2, True) | _levels(_P, (3,), 2) | _levels(_P, (3,), 2, True)
    | _levels(_AF, (3,), 2) | _levels(_AF, (3,), 2, True),
}
_S2_FROM_L2 = _levels(_T, (0, 2, 3)) | _levels(_AF, (2, 3)) | _levels(_AS, (2, 3)) | _levels(_P, (3,))
_TWO_STAGES_S2_FROM_L2 = _COMMON | _levels(_AS, (1, 2, 3)) | _levels(_P, (2, 3)) | _levels(_T, (2, 3), 2) \
    | _levels(_T, (2, 3), 2, True) | _levels(_P, (3,), 2) | _levels(_P, (3,), 2, True) | _levels(_AF, (3,), 2) \
    | _levels(_AF, (3,), 2, True)
COVERAGE |= {"aarch64-s2-64k-42": _S2_FROM_L2, "aarch64-s2-16k-40": _S2_FROM_L2,
             "aarch64-64k-48+s2-64k-42": _TWO_STAGES_S2_FROM_L2, "aarch64-16k-47+s2-16k-40": _TWO_STAGES_S2_FROM_L2}
_PLACED = re.compile(r"^(?:ttbr[01]|el2|s2)-(table-outside-ram|table-above-48-bits|leaf-outside-ram|block)-L(-?\d)"
                     r"(?:-([a-z]+))?(-beyond-ram)?$")


def _drawn(mode: str, labels: set[str]) -> set[tuple[str, int, int, bool]]:
    """The faults the seed placed, from the labels that name their level: an External abort at the level
    after a table outside RAM (or above 2**48), at a page or block outside RAM and at a block's part beyond
    RAM (one stage: with stage 2, these IPAs fault at stage 2); stage 2 alone, a Permission fault at a block
    without every right."""
    out = set()
    for label in labels:
        m = _PLACED.match(label)
        if m is None:
            continue
        kind, level, rights, beyond = m[1], int(m[2]), m[3], m[4]
        if "+s2" not in mode and kind.startswith("table-"):
            out.add((_EA, level + 1, 1, False))
        elif "+s2" not in mode and (kind == "leaf-outside-ram" or beyond):
            out.add((_EA, level, 1, False))
        elif kind == "block" and mode in STAGE2_MODES and rights != "rwx":
            out.add((_P, level, 1, False))
    return out


TWO_STAGE_MODES = ("aarch64-4k-48+s2-4k-40", "aarch64-64k-48+s2-64k-42", "aarch64-16k-47+s2-16k-40")
STAGE2_MODES = ("aarch64-s2-4k-40", "aarch64-s2-64k-42", "aarch64-s2-16k-40")


def _sets(mode: str) -> dict[int, VectorSet]:
    """Full sets of `mode` for seeds 1 and 2, built once per test session."""
    if mode not in _CACHE:
        _CACHE[mode] = {seed: generate_aarch64(mode, seed) for seed in (1, 2)}
    return _CACHE[mode]


_CACHE: dict[str, dict[int, VectorSet]] = {}


def _by(vs: VectorSet) -> dict[tuple[str, str, str], Any]:
    return {(c.label, c.access, c.privilege): c for c in vs.cases}


def test_the_layout_conventions_are_fixed() -> None:
    assert (RAM_BASE, RAM_SIZE) == (0x4100_0000, 8 << 20)
    assert tag(0x4123_4568) == 0x4123_4568_D421_4C80          # BRK #0xA64 in the low word


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_covers_its_fault_kinds_and_levels(mode: str) -> None:
    for vs in _sets(mode).values():
        seen = {(c.fault, c.level, c.stage or 1, bool(c.implicit)) for c in vs.cases if c.fault is not None}
        assert seen == COVERAGE[mode] | _drawn(mode, {c.label for c in vs.cases})
        assert any(c.fault is None for c in vs.cases) and all(c.perms is not None for c in vs.cases if c.pa)


@pytest.mark.parametrize("mode", MODES)
def test_no_case_uses_the_harness_slot_and_ram_is_tagged(mode: str) -> None:
    vs = _sets(mode)[1]
    walker = walker_for(vs)
    regions = walker.rules.regime.regions
    s2 = walker.stage2.rules.regime.regions[0].fmt if walker.stage2 is not None else None
    for c in vs.cases:
        for region in regions:
            if region.canonical_np(c.va):                     # the region the VA selects, in range
                assert not reserved_slot(region.fmt, c.va), (c.label, hex(c.va))
        if s2 is not None and c.gpa is not None and c.gpa < 1 << s2.va_bits:
            assert not reserved_slot(s2, c.gpa), (c.label, hex(c.gpa))
    pages = [c.pa & ~7 for c in vs.cases if c.pa is not None and c.label.endswith(("-rw", "-ro"))
             and "block" not in c.label]                   # a large block maps the tables in RAM too
    assert pages
    for pa in pages:
        assert vs.mem.read_u64(pa) == tag(pa)


def test_the_outcomes_are_the_manuals() -> None:
    """AP[2:1], PXN/UXN, the EL0-writable rule, hierarchical attributes and the ESR of each (D8.4, D24)."""
    by = _by(_sets("aarch64-4k-48")[1])
    assert by["ttbr0-user-rw", "write", "user"].perms == by["ttbr0-user-rw", "read", "supervisor"].perms
    assert by["ttbr0-user-rx", "execute", "supervisor"].fault == "permission"     # PXN=1
    assert by["ttbr0-user-rw-pxn0", "execute", "supervisor"].fault == "permission"  # EL0-writable: never PX
    assert by["ttbr1-rx", "execute", "user"].fault == "permission"               # UXN=1 on kernel pages
    assert by["ttbr1-rx", "execute", "supervisor"].fault is None
    assert by["ttbr1-device", "execute", "supervisor"].fault == "permission"     # no fetch from Device memory
    assert by["ttbr1-device", "read", "supervisor"].memtype == "device-ngnre"
    assert by["ttbr1-nc", "read", "supervisor"].memtype == "normal-nc"
    assert by["ttbr0-aptable-ro-L0", "write", "supervisor"].level == 3          # reported at the leaf
    assert by["ttbr0-aptable-no-el0-L1", "read", "user"].fault == "permission"
    assert by["ttbr1-pxntable-L2", "execute", "supervisor"].fault == "permission"
    assert by["ttbr0-uxntable-L2", "execute", "user"].fault == "permission"
    user_write = by["ttbr0-user-ro", "write", "user"]
    assert user_write.syndrome["esr"] == 0x24 << 26 | 1 << 25 | ESR_WNR | 0b001111     # lower EL, level 3
    assert user_write.syndrome["far"] == user_write.va and user_write.syndrome["el"] == 1
    fetch = by["ttbr1-invalid-L2", "execute", "supervisor"]
    assert fetch.syndrome["esr"] == 0x21 << 26 | 1 << 25 | 0b000110                   # same EL, IFSC level 2
    assert by["ttbr1-out-of-range", "read", "supervisor"].fault == "translation"
    assert by["ttbr0-top-byte", "read", "user"].level == 0


@pytest.mark.parametrize("mode", TWO_STAGE_MODES)
def test_two_stage_sets_fault_at_stage_2_on_table_reads_s1ptw(mode: str) -> None:
    by = _by(_sets(mode)[1])
    top = VECTOR_MODES[mode].stage1_formats()[-1].levels[0].arch_level
    for label in (f"ttbr1-table-s2-hole-L{top}", "ttbr1-table-s2-none", "ttbr1-table-s2-wo", "ttbr1-table-s2-af0"):
        c = by[label, "read", "supervisor"]
        assert (c.stage, c.implicit) == (2, True) and c.syndrome["esr"] & ESR_S1PTW, label
        assert c.syndrome["hpfar"] == (c.gpa >> 12) << 4 and c.syndrome["el"] == 2
    assert by["ttbr1-table-s2-ro", "read", "supervisor"].fault is None      # reads through stage 2 read-only
    final = by["ttbr1-s2-ro", "write", "supervisor"]
    assert (final.fault, final.stage, final.implicit) == ("permission", 2, False)
    assert not final.syndrome["esr"] & ESR_S1PTW and final.syndrome["esr"] & ESR_WNR
    assert by["ttbr1-s2-rw-xn", "execute", "supervisor"].stage == 2
    assert by["ttbr1-s2-wo", "write", "supervisor"].fault is None
    ok = by["ttbr1-rw", "read", "supervisor"]
    assert ok.gpa is not None and ok.pa == ok.gpa + RAM_SIZE                 # guest RAM is host RAM + 8 MiB


@pytest.mark.parametrize("mode", STAGE2_MODES)
def test_stage_2_alone_has_every_s2ap_and_xn(mode: str) -> None:
    by = _by(_sets(mode)[1])
    for label, allowed in (("s2-none", ""), ("s2-ro", "r"), ("s2-wo", "w"), ("s2-rw", "rw")):
        got = "".join(a[0] for a in ("read", "write") if by[label, a, "user"].fault is None)
        assert got == allowed, label
    assert [by["s2-xn-el1", "execute", p].fault for p in ("supervisor", "user")] == ["permission", None]
    assert [by["s2-xn-el0", "execute", p].fault for p in ("supervisor", "user")] == [None, "permission"]
    assert by["s2-out-of-range", "read", "user"].fault == "translation"


@pytest.mark.parametrize(("mode", "tg0", "sl0", "t0sz", "ps", "tables"), [
    ("aarch64-s2-4k-40", 0, 1, 24, 2, 2), ("aarch64-s2-64k-42", 1, 1, 22, 3, 1),
    ("aarch64-s2-16k-40", 2, 1, 24, 2, 16),
    ("aarch64-4k-48+s2-4k-40", 0, 1, 24, 2, 2), ("aarch64-64k-48+s2-64k-42", 1, 1, 22, 3, 1),
    ("aarch64-16k-47+s2-16k-40", 2, 1, 24, 2, 16)])
def test_stage_2_granule_size_and_start_level_are_the_modes(mode: str, tg0: int, sl0: int, t0sz: int, ps: int,
                                                            tables: int) -> None:
    """VTCR_EL2.TG0, SL0 (level 1 for 4KB, level 2 for 16KB and 64KB: D24.2.224), T0SZ and PS (40 bits, 42
    for a 42-bit IPA space: `modes.S2_PS_BITS`); the initial tables concatenated (D8.2.4); the VTTBR_EL2
    root aligned to their size."""
    vs = _sets(mode)[1]
    vtcr = vs.registers["vtcr_el2"]
    assert tuple(VTCR_EL2.get(vtcr, f) for f in ("TG0", "SL0", "T0SZ", "PS")) == (tg0, sl0, t0sz, ps)
    walker = walker_for(vs)
    stage2 = walker if walker.stage2 is None else walker.stage2
    region = stage2.rules.regime.regions[0]
    granule = VECTOR_MODES[mode].s2_granule
    assert concatenated(region.fmt, granule) == tables and region.root % (tables * granule.size) == 0
    assert region.fmt.levels[0].arch_level == VECTOR_MODES[mode].s2_start


@pytest.mark.parametrize("mode", ["aarch64-4k-48", "aarch64-4k-52-lpa2"])
def test_the_same_seed_gives_the_same_bytes(mode: str, tmp_path: Path) -> None:
    for n in (1, 2):
        generate_aarch64(mode, 7, cases=300).write(tmp_path / str(n), "readme\n")
    for name in ("mem.bin", "vectors.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
    one, two = _sets(mode)[1], _sets(mode)[2]
    assert one.mem.regions[0].data.tobytes() != two.mem.regions[0].data.tobytes()
    assert [c.va for c in one.cases] != [c.va for c in two.cases]


@pytest.mark.parametrize("mode", MODES)
def test_cli_generate_show_check_and_a_flipped_bit(mode: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", mode, "--seed", "4", "--cases", "400", "--out", str(out)]) == 0
    assert f"cases for {mode} (seed 4)" in capsys.readouterr().out
    readme = (out / "README.txt").read_text()
    assert "0xD4214C80" in readme and "last entry of a root table" in readme
    assert ("no EL0" in readme) == ("el2" in mode) and ("S1PTW=1" in readme) == ("+s2" in mode)
    assert main(["vectors", "show", str(out), "--cases"]) == 0
    shown = capsys.readouterr().out
    assert ("VTTBR_EL2" if "s2" in mode else "TTBR0_EL") in shown
    assert main(["vectors", "check", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("400 passed, 0 failed")

    vs = VectorSet.read(out)
    walker = walker_for(vs)
    case = next(c for c in vs.cases if c.fault is None and c.access == "write")
    if walker.stage2 is not None:                                          # the stage 2 leaf: no writes
        assert case.gpa is not None
        pte, bit = walker.stage2.translate(case.gpa, "write", case.privilege).pte, S2AP_W
    else:
        pte = walker.translate(case.va, "write", case.privilege).pte
        bit = S2AP_W if "s2" in mode else AP_RO
    image = np.fromfile(out / "mem.bin", dtype=np.uint64)
    (slot, *_) = np.flatnonzero(image == np.uint64(pte))
    image[slot] ^= np.uint64(bit)
    image.tofile(out / "mem.bin")
    assert main(["vectors", "check", str(out)]) == 1
    report = capsys.readouterr().out
    assert f"{case.va:#x} write" in report and not report.strip().endswith(" 0 failed")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["registers"].update(tcr_el1=hex(int(d["registers"]["tcr_el1"], 16) | TCR_EL1.build(TG0=2))),
     "selects VMSAv8-64 stage 1 16KB granule"),
    (lambda d: d["registers"].update(sctlr_el1=hex(SCTLR_EL1.build(C=1))), "selects translation off"),
    (lambda d: d["registers"].update(tcr_el1=hex(int(d["registers"]["tcr_el1"], 16) | 3 << 14)), "TG0 0b11"),
    (lambda d: d["registers"].pop("mair_el1"), "registers.mair_el1 is missing"),
    (lambda d: d["registers"].update(cr3="0x0"), "unknown key 'cr3'"),
    (lambda d: d["options"].update(pa_range=47), "options.pa_range must be a PARange size"),
    (lambda d: d["options"].update(maxphyaddr=40), "unknown key 'maxphyaddr'"),
    (lambda d: d["cases"][0].update(stage=1), "applies to the two-stage modes"),
])
def test_bad_vector_sets_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             edit: Callable[[dict[str, Any]], object], message: str) -> None:
    assert_edit_refused(generate_aarch64("aarch64-4k-48", 1, cases=20), tmp_path, capsys, edit, message)


def test_a_stage_2_set_with_stage_2_off_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_aarch64("aarch64-s2-4k-40", 1, cases=10).write(tmp_path, "x\n")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    doc["registers"]["hcr_el2"] = "0x80000000"
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(tmp_path)]) == 2
    assert "VM=0: stage 2 is off" in capsys.readouterr().err


def _vtcr(**fields: int) -> Callable[[dict[str, Any]], object]:
    """An edit of a vector set's VTCR_EL2: `fields` replaced."""
    def edit(d: dict[str, Any]) -> None:
        value = int(d["registers"]["vtcr_el2"], 16)
        for name, v in fields.items():
            value = (value & ~VTCR_EL2.mask(name)) | VTCR_EL2.build(**{name: v})
        d["registers"]["vtcr_el2"] = hex(value)
    return edit


@pytest.mark.parametrize(("mode", "edit", "message"), [
    ("aarch64-s2-16k-40", _vtcr(TG0=0), "selects VMSAv8-64 stage 2 4KB granule, 40-bit IPA from level 1, not"),
    ("aarch64-s2-64k-42", _vtcr(SL0=0), "T0SZ and SL0 are inconsistent"),             # level 3: 2**10 tables
    ("aarch64-s2-64k-42", _vtcr(T0SZ=24), "64KB granule, 40-bit IPA from level 2, not"),
    ("aarch64-16k-47+s2-16k-40", _vtcr(SL0=2), "16KB granule, 40-bit IPA from level 1, not"),
])
def test_stage_2_registers_of_another_geometry_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           mode: str, edit: Callable[[dict[str, Any]], object],
                                                           message: str) -> None:
    assert_edit_refused(generate_aarch64(mode, 1, cases=20), tmp_path, capsys, edit, message)


@pytest.mark.parametrize("register", REGISTERS)
def test_cli_explain_every_register(register: str, capsys: pytest.CaptureFixture[str]) -> None:
    vs = _sets("aarch64-4k-48+s2-4k-40")[1]
    value = vs.registers.get(register, 0x0060_0000_4100_1703)
    assert main(["explain", "--arch", "aarch64", "--register", register, hex(value)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") > 2 and "->" in out


def test_cli_explain_says_what_the_walk_makes_of_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--arch", "aarch64", "0x60000041001703"]) == 0                # default: descriptor
    out = capsys.readouterr().out
    assert "page of 0x1000 bytes at PA 0x41001000" in out and "at level 0: table: the level 1 table" in out
    assert main(["explain", "--arch", "aarch64", "0x40000000000701"]) == 0
    out = capsys.readouterr().out
    assert "level 2 block (2MB)" in out and "at level 0: reserved" in out
    assert main(["explain", "--arch", "aarch64", "--register", "vtcr_el2", "0x80023558"]) == 0
    assert "walk starts at level 1 with 2 concatenated tables" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["explain", "--arch", "aarch64", "--register", "satp", "1"], "aarch64 has no register 'satp'"),
    (["explain", "--arch", "aarch64", "--register", "tcr_el9", "1"], "invalid choice: 'tcr_el9'"),
    (["explain", "--arch", "aarch64", "--register", "tcr_el1", "0x12zz"], "not a number"),
    (["explain", "--arch", "aarch64", "--register", "tcr_el1", "0x1" + "0" * 16], "does not fit in 64 bits"),
    (["explain", "--arch", "aarch64", "-0x1"], "negative"),
    (["vectors", "generate", "--mode", "aarch64-4k-48", "--seed", "1", "--out", "{tmp}", "--no-nxe"],
     "--no-nxe is an option of the x86_64 modes, not of aarch64-4k-48"),
    (["vectors", "generate", "--mode", "aarch64-8k-48", "--seed", "1", "--out", "{tmp}"], "invalid choice"),
    (["vectors", "generate", "--mode", "aarch64-4k-48", "--seed", "-1", "--out", "{tmp}"], "seed -1 is negative"),
])
def test_bad_arguments_exit_2_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  argv: list[str], message: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:                           # argparse's own errors: one line too
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert err.startswith("pagetable: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


GOLDEN = {  # mode: (mem.bin, vectors.json), seed 7, every target x access x privilege
    "aarch64-4k-48": ("bc68dc5734d7f5ad", "d59741a62991f702"),
    "aarch64-4k-39": ("4010731a9c7e9567", "9d8f82f14c6e3148"),
    "aarch64-16k-47": ("55255f62c842851b", "887e1b8708e858d7"),
    "aarch64-64k-48": ("145a0ae18d61efa4", "854032a9aedbe5a3"),
    "aarch64-64k-52": ("144fa2efeb093a0c", "f845692dad489992"),
    "aarch64-4k-52-lpa2": ("57813877c7a7179a", "60d05238e04e6430"),
    "aarch64-el2-4k-48": ("266141d9639e99c2", "1912fee8d75cf2c5"),
    "aarch64-s2-4k-40": ("3a1e6bfc2223906f", "f6dcabc89810bfdc"),
    "aarch64-4k-48+s2-4k-40": ("9fac908f8f5a5fde", "b7776a3e25af86d3"),
    "aarch64-s2-64k-42": ("9bea4fb0db46e088", "6fa6ce824af673fd"),
    "aarch64-s2-16k-40": ("e92cde958fc0a4ac", "5c383005e9566f6b"),
    "aarch64-64k-48+s2-64k-42": ("59bd7052a5cb8db9", "b0e76a0c85d7e91c"),
    "aarch64-16k-47+s2-16k-40": ("f5d82e1cc11df904", "389491be3c35351d"),
}


@pytest.mark.parametrize("mode", MODES)
def test_golden_digests(tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    """As tests/test_vectors_golden.py for RISC-V: a change of the bytes must be deliberate."""
    assert main(["vectors", "generate", "--mode", mode, "--seed", "7", "--out", str(tmp_path)]) == 0
    digests = tuple(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()[:16]
                    for name in ("mem.bin", "vectors.json"))
    assert digests == GOLDEN[mode]


def test_timing_and_counts() -> None:
    """A 100,000-case two-stage set is built and walked well within a second or two (columns, not a list)."""
    assert_100k_cases_fast(lambda n: generate_aarch64("aarch64-4k-48+s2-4k-40", 1, cases=n))


@pytest.mark.parametrize("mode", ["aarch64-4k-48", "aarch64-16k-47", "aarch64-64k-48", "aarch64-s2-4k-40"])
def test_contiguous_runs_qualify_and_translate_page_by_page(mode: str) -> None:
    """Each region's run of Contiguous pages (D8.7.1): the set's size of entries, every one with the bit,
    aligned in input and output, EL1 reads translating each page to its own frame; writes fault (read-only)."""
    vs = _sets(mode)[1]
    walker = walker_for(vs)
    runs = [c for c in vs.cases if "-contiguous-" in c.label]
    assert {c.label.split("-")[0] for c in runs} == ({"s2"} if "s2" in mode else {"ttbr0", "ttbr1"})
    granule = VECTOR_MODES[mode].s2_granule if "s2" in mode else VECTOR_MODES[mode].granule
    size = CONTIGUOUS_ENTRIES[granule, 3] * granule.size
    for c in runs:
        t = walker.translate(c.va, c.access, c.privilege)
        if c.access == "write":
            assert c.fault == "permission" and c.level == 3, c
        elif c.access == "read" and c.privilege == "supervisor":                 # EL1 reads EL0's too
            assert t.pte is not None and t.pte & CONTIGUOUS and c.pa is not None and c.level is None, c
            assert (c.va - c.pa) % size == 0 and t.level == 3, c
