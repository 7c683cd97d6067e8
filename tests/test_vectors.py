"""The vector generator, the pagetable-vectors/2 reader/writer (and version 1 reader) and the command line."""

from __future__ import annotations

import collections
import errno
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetable import registry
from pagetable.arch.riscv_sv39 import SV39, SV39X4, Hgatp, Vsatp
from pagetable.arch.riscv_sv39.entry import pte_paddr
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions
from pagetable.cli import main
from pagetable.errors import InvalidAddress, NotMapped
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors import SCHEMA, VectorsError, VectorSet, generate_riscv, schema
from pagetable.vectors.generation import Target, pick
from pagetable.vectors.riscv.gen import GUEST_BACKING, GUEST_RAM, RAM_BASE, RAM_SIZE
from pagetable.vectors.riscv.modes import walker_for
from pagetable.vectors.schema import Case, Cases, json_text, write_json
from pagetable.walker import Access, Privilege

from .fuzzing import fuzz


@pytest.mark.parametrize("mode", ["sv39", "sv48", "sv57"])
def test_same_seed_same_bytes(mode: str, tmp_path: Path) -> None:
    for n in (1, 2):
        generate_riscv(mode, 7).write(tmp_path / str(n), "readme\n")
    assert (tmp_path / "1" / "mem.bin").read_bytes() == (tmp_path / "2" / "mem.bin").read_bytes()
    assert (tmp_path / "1" / "vectors.json").read_text() == (tmp_path / "2" / "vectors.json").read_text()
    other = generate_riscv(mode, 8)
    assert other.mem.regions[0].data.tobytes() != (tmp_path / "1" / "mem.bin").read_bytes()


_SCALARS = (st.text() | st.integers() | st.booleans() | st.none() | st.floats()
            | st.sampled_from([Access.READ, "caf\u00e9", "\ud800", "a\nb\"c\\", 1 << 63]))
_JSON_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                            | st.dictionaries(st.text(max_size=4) | st.integers() | st.booleans() | st.none(),
                                              inner, max_size=4), max_leaves=20)


@fuzz(300, 3000)
@given(_JSON_VALUES, st.dictionaries(st.text(max_size=3), _JSON_VALUES, max_size=4))
def test_json_text_is_json_dumps(value: Any, doc: dict[str, Any]) -> None:
    """write's encoder gives json.dump's text (indent=1) for every value, also nested, and for a document
    with lists given as iterators."""
    assert json_text(value) == json.dumps(value, indent=1)
    assert json_text({"a": [value]}, "\n  ") == json.dumps({"a": [value]}, indent=1).replace("\n", "\n  ")
    out = io.StringIO()
    write_json(out, {k: iter(v) if isinstance(v, list) else v for k, v in doc.items()})
    assert out.getvalue() == json.dumps(doc, indent=1)


def test_write_read_round_trip(tmp_path: Path) -> None:
    vs = generate_riscv("sv48", 3, cases=50, options=RiscvOptions(sum=True, ad="svadu"))
    vs.write(tmp_path, "x\n")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    assert doc["schema"] == SCHEMA and doc["arch"] == "riscv64" and doc["mode"] == "sv48"
    assert doc["memory"] == [{"file": "mem.bin", "base": "0x80000000",
                              "sha256": hashlib.sha256((tmp_path / "mem.bin").read_bytes()).hexdigest()}]
    assert doc["options"] == {"sum": True, "mxr": False, "ad": "svadu", "svnapot": False, "svpbmt": False,
                              "seed": 3}
    assert doc["registers"]["satp"].startswith("0x9")                 # MODE 9 = Sv48
    assert all(isinstance(c["va"], str) and c["va"].startswith("0x") for c in doc["cases"])
    back = VectorSet.read(tmp_path)
    assert back.cases == vs.cases and back.registers == vs.registers
    assert back.mem.regions[0].base == RAM_BASE and back.mem.regions[0].size == RAM_SIZE
    assert np.array_equal(back.mem.regions[0].data, vs.mem.regions[0].data)
    assert len(back.cases) == 50


def test_cases_cover_every_rule_and_extend() -> None:
    vs = generate_riscv("sv39", 5, options=RiscvOptions(svnapot=True, svpbmt=True))
    reasons = {c.reason for c in vs.cases}
    assert reasons == {"ok", "non-canonical", "table-outside-memory", "invalid", "w-without-r", "reserved",
                       "non-leaf-at-last-level", "permission", "misaligned-superpage", "accessed-dirty",
                       "pa-outside-memory"}
    napot = [(c.va, c.pa) for c in vs.cases if c.label == "napot-64k" and c.pa is not None]
    assert napot and all(pa >> 16 == napot[0][1] >> 16 for _, pa in napot)
    assert all(pa & 0xFFFF == va & 0xFFFF for va, pa in napot)        # Svnapot: PA bits 15:12 from the VA
    assert len(generate_riscv("sv39", 5, cases=1000).cases) == 1000


def test_pick_draws_every_combo_or_a_sample_or_more() -> None:
    """pick's cases, always in target, access, privilege order: every target x access x privilege once, a
    sample of them without repeats, or all of them and random ones besides; each VA a multiple of 8 inside
    its target; the same draws from the same seed."""
    targets = [Target("a", 0x1000, 4096), Target("b", 0xFFFF_FFC0_0000_0000, 1 << 30), Target("c", 0x8, 12)]
    combos = [(t, a, p) for t in range(3) for a in (Access.READ, Access.WRITE, Access.EXECUTE)
              for p in (Privilege.SUPERVISOR, Privilege.USER)]

    def picked(count: int | None, seed: int = 3) -> list[tuple[int, int, int, int]]:
        va, access, privilege, target = pick(targets, count, np.random.default_rng(seed))
        for v, t in zip(va.tolist(), target.tolist(), strict=True):
            assert v % 8 == 0 and targets[t].va <= v < targets[t].va + targets[t].span
        return list(zip(target.tolist(), access.tolist(), privilege.tolist(), va.tolist(), strict=True))

    assert [c[:3] for c in picked(None)] == combos
    sample = [c[:3] for c in picked(7)]
    assert len(sample) == len(set(sample)) == 7 and sample == sorted(sample) and set(sample) <= set(combos)
    more = [c[:3] for c in picked(500)]
    assert len(more) == 500 and more == sorted(more) and set(more) == set(combos)
    assert picked(500) == picked(500) and picked(500, 4) != picked(500)


def test_cases_are_a_sequence_of_case() -> None:
    """A generated set's Cases: indexing (also negative), slices, iteration and equality with a list of
    the same Case objects; the columns cannot be written."""
    vs = generate_riscv("sv39+sv39x4", 2, cases=300)
    cases = vs.cases
    assert isinstance(cases, Cases)
    listed = list(cases)
    assert len(listed) == 300 and listed == cases and cases == listed and cases != listed[:-1]
    assert cases[-1] == listed[-1] and cases[5] == listed[5] and cases[10:20:3] == listed[10:20:3]
    assert list(reversed(cases)) == listed[::-1] and cases.index(listed[7]) == 7
    with pytest.raises(IndexError):
        cases[300]
    va, access, privilege = vs.lanes()
    assert va.tolist() == [c.va for c in listed]
    assert [Access(a).label for a in access.tolist()] == [c.access for c in listed]
    assert [Privilege(p).label for p in privilege.tolist()] == [c.privilege for c in listed]
    with pytest.raises(ValueError, match="read-only"):
        va[0] = 0


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON"),
    ('{"schema": "other/1"}', "'schema' must be"),
    ('{"schema": "pagetable-vectors/1", "arch": "riscv64", "mode": "sv39", "memory": []}', "'memory'"),
])
def test_reader_rejects_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "vectors.json").write_text(text)
    with pytest.raises(VectorsError, match=message):
        VectorSet.read(tmp_path)


def test_reader_rejects_bad_cases_and_escaping_paths(tmp_path: Path) -> None:
    generate_riscv("sv39", 1, cases=3).write(tmp_path, "")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    doc["cases"][1] = {"va": 12, "access": "read", "privilege": "user", "pa": "0x0"}
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match=r"cases\[1\].va must be a hex string"):
        VectorSet.read(tmp_path)
    doc["cases"][1] = {"va": "0x0", "access": "fetch", "privilege": "user", "pa": "0x0"}
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match="access must be one of"):
        VectorSet.read(tmp_path)
    doc["memory"][0]["file"] = "../mem.bin"
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match="inside the vector directory"):
        VectorSet.read(tmp_path)


def test_a_readme_with_a_lone_surrogate_is_written_escaped(tmp_path: Path) -> None:
    generate_riscv("sv39", 1, cases=5).write(tmp_path, "a lone surrogate \udc80 is escaped\n")
    assert (tmp_path / "README.txt").read_text() == "a lone surrogate \\udc80 is escaped\n"


def test_an_output_that_cannot_be_written_is_a_one_line_error(tmp_path: Path) -> None:
    """`vectors show > /dev/full` ended in an OSError traceback."""
    import subprocess
    import sys
    generate_riscv("sv39", 1, cases=5).write(tmp_path, "")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "pagetable.cli", "vectors", "show", str(tmp_path)], stdout=full,
                              stderr=subprocess.PIPE, text=True, check=False)
    assert done.returncode == 2 and done.stderr.startswith("pagetable: error: cannot write the output")
    assert done.stderr.count("\n") == 1, done.stderr


def test_a_failed_write_leaves_the_previous_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed generate (a full disk) truncated the previous vectors.json; VectorSet.write(dir, 5) wrote the
    files and then raised TypeError."""
    generate_riscv("sv39", 1, cases=5).write(tmp_path, "first\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(VectorsError):
        generate_riscv("sv39", 2, cases=5).write(tmp_path, 5)  # type: ignore[arg-type]
    with pytest.raises(VectorsError):
        generate_riscv("sv39", 2, cases=5).write(str(tmp_path) + "\0x", "readme")

    def full_disk(fh: Any, doc: object) -> None:
        fh.write('{"schema": "pagetable-vec')
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(schema, "write_json", full_disk)
    with pytest.raises(VectorsError, match="No space left on device"):
        generate_riscv("sv39", 2, cases=5).write(tmp_path, "second\n")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_generate_show_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", "sv57", "--seed", "0x10", "--out", str(out), "--cases", "40",
                 "--mxr"]) == 0
    assert main(["vectors", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "riscv64 sv57" in shown and "PTE" in shown and "40 cases:" in shown
    assert "note: the level-" in shown                      # the table pointer outside RAM is reported
    assert main(["vectors", "check", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("40 passed, 0 failed")
    # a tampered expectation is caught
    doc = json.loads((out / "vectors.json").read_text())
    case = next(c for c in doc["cases"] if "pa" in c)
    case["pa"] = hex(int(case["pa"], 16) + 0x1000)
    (out / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(out)]) == 1
    assert "39 passed, 1 failed" in capsys.readouterr().out


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "show", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pagetable: error: cannot read") and err.count("\n") == 1
    generate_riscv("sv39", 1, cases=5).write(tmp_path, "")
    (tmp_path / "mem.bin").write_bytes(b"\0" * 12)
    assert main(["vectors", "check", str(tmp_path)]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["explain", "notanumber"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == ("pagetable: error: explain: argument value: not a number: 'notanumber' "
                                       "(pagetable explain --help lists the options)\n")


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "0x200800c7"]) == 0
    out = capsys.readouterr().out
    assert "PPN      = 0x80200" in out and "PA 0x80200000" in out
    assert "-> at Sv39 level 2: page fault (misaligned-superpage)" in out
    assert "-> at Sv39 level 0: leaf, S:rw- U:---" in out
    assert main(["explain", "--register", "satp", "0x8000000000080000"]) == 0
    assert "MODE     = 8 (1000)  Sv39" in capsys.readouterr().out


HYP_MODES = ["sv39x4", "sv48x4", "sv39+sv39x4", "sv48+sv48x4"]


@pytest.mark.parametrize("mode", HYP_MODES)
def test_hypervisor_modes_registers_and_stages(mode: str, tmp_path: Path) -> None:
    vs = generate_riscv(mode, 4, options=HypervisorOptions(ad="svadu"))
    hgatp, vsatp = Hgatp.decode(vs.registers["hgatp"]), Vsatp.decode(vs.registers["vsatp"])
    assert hgatp.format is not None and hgatp.format.name.lower() == mode.split("+")[-1]
    assert hgatp.root % 0x4000 == 0                                    # the 16 KiB G-stage root
    two_stage = "+" in mode
    assert (vsatp.format is not None) == two_stage and (vs.registers["vsatp"] == 0) != two_stage
    causes = {"access-fault": {"read": 5, "write": 7, "execute": 1}, "page-fault": {"read": 13, "write": 15,
              "execute": 12}, "guest-page-fault": {"read": 21, "write": 23, "execute": 20}}
    for c in vs.cases:
        if c.fault is not None:                                        # stval: the (guest) VA
            assert c.syndrome is not None and (c.syndrome["scause"], c.syndrome["stval"]) == (
                causes[c.fault][c.access], c.va), c
        if c.fault == "guest-page-fault":                              # htval: the GPA >> 2; htinst: the
            assert c.stage == 2 and c.gpa is not None                  # PTE read/write pseudoinstruction
            assert c.syndrome is not None and c.syndrome["htval"] == c.gpa >> 2, c
            assert c.syndrome["htinst"] in ((0x3000, 0x3020) if c.implicit else (0,)), c
        elif c.fault is not None:
            assert c.syndrome is not None and (c.syndrome["htval"], c.syndrome["htinst"]) == (0, 0), c
        if c.fault == "page-fault":
            assert two_stage and c.stage == 1 and c.gpa is None
        if c.pa is not None:
            assert c.gpa is not None and c.stage is None and not c.implicit and c.syndrome is None
            if not two_stage:
                assert c.gpa == c.va                                   # vsatp Bare: the VA is the GPA
    labels = {c.label for c in vs.cases}
    assert {"gpa-upper-half", "gpa-too-wide", "no-user-rw"} <= labels if not two_stage else {
        "gstage-ro", "gstage-xo", "gstage-no-user", "gstage-hole", "gstage-gpa-too-wide", "gstage-upper-half",
        "vs-table-gstage-hole", "vs-table-gstage-xo", "vs-table-gstage-no-user", "vs-table-gstage-ro-a-clear",
    } <= labels
    vs.write(tmp_path, "")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    assert set(doc["registers"]) == {"vsatp", "hgatp"} and doc["mode"] == mode
    assert doc["options"] == {"vs_sum": False, "vs_mxr": False, "hs_mxr": False, "ad": "svadu",
                              "svnapot": False, "svpbmt": False, "seed": 4}
    gpf = next(c for c in doc["cases"] if c.get("fault") == "guest-page-fault")
    assert gpf["stage"] == 2 and gpf["gpa"].startswith("0x")
    assert VectorSet.read(tmp_path).cases == vs.cases


def _by_hand(vs: VectorSet) -> Callable[[int], tuple[int, int, int | None]]:
    """For a two-stage set (sv39+sv39x4): VA -> (GPA of its VS last-level PTE, GPA it maps, HPA or None),
    found through the software view of both tables (`PageTable`: the codecs, not the walker). The VS root
    and level-1 tables are in guest RAM (host RAM at GUEST_BACKING); the last-level table is read where the
    G-stage maps it."""
    host = vs.mem
    hgatp, vsatp = Hgatp.decode(vs.registers["hgatp"]), Vsatp.decode(vs.registers["vsatp"])
    assert hgatp.format is SV39X4 and vsatp.format is SV39
    g = PageTable(SV39X4, host, FrameAllocator(host), root=hgatp.root)
    guest = PhysMem([(GUEST_RAM, host.view(GUEST_BACKING, RAM_SIZE))])
    s1 = PageTable(SV39, guest, FrameAllocator(guest), root=vsatp.root)

    def walk(va: int) -> tuple[int, int, int | None]:
        pte = pte_paddr(s1.lookup(va, 1).raw) + 8 * ((va >> 12) & 511)
        try:
            leaf = host.read_u64(g.query(pte)[0])
        except NotMapped:
            return pte, -1, None
        gpa = pte_paddr(leaf) + (va & 0xFFF)
        try:
            return pte, gpa, g.query(gpa)[0]
        except (NotMapped, InvalidAddress):
            return pte, gpa, None
    return walk


def test_two_stage_cases_mean_what_they_say() -> None:
    """Spot checks of the two-stage targets against the spec's rules: each case's whole outcome (pa, fault,
    level, stage, gpa, implicit, syndrome), with the GPAs and HPAs read from the tables by hand. VS leaves
    of these targets are RWX with A=D=1 and U=0, so VS-mode (supervisor) passes the VS-stage and the G-stage
    decides; a translation's perms are the VS leaf's (supervisor rwx) and the G-stage leaf's (its R/W/X for
    both privileges, no W where D=0)."""
    sets = {ad: generate_riscv("sv39+sv39x4", 9, options=HypervisorOptions(ad=ad)) for ad in ("svade", "svadu")}
    cases = {ad: {(c.label, c.access, c.privilege): c for c in v.cases} for ad, v in sets.items()}
    walkers = {ad: walker_for(v) for ad, v in sets.items()}
    by_hand = _by_hand(sets["svade"])                                  # the images do not depend on options
    assert sets["svade"].mem.regions[0].data.tobytes() == sets["svadu"].mem.regions[0].data.tobytes()

    def expect(c: Case, outcome: tuple[object, ...], reason: str, perms: int = 0, ad: str = "svade") -> None:
        assert (c.outcome(), c.reason) == (outcome, reason), (ad, c)
        assert walkers[ad].translate(c.va, c.access, c.privilege).perms == perms, (ad, c)   # 0 for a fault

    def gpf(c: Case, cause: int, gpa: int, level: int = 0, implicit: int = 0) -> tuple[object, ...]:
        htinst = {0: 0, 1: 0x3000, 2: 0x3020}[implicit]                  # implicit PTE read, PTE write
        return (None, "guest-page-fault", level, 2, gpa, bool(implicit),
                {"scause": cause, "stval": c.va, "htval": gpa >> 2, "htinst": htinst})

    def pf(c: Case, cause: int) -> tuple[object, ...]:
        return (None, "page-fault", 0, 1, None, False, {"scause": cause, "stval": c.va, "htval": 0, "htinst": 0})

    def ok(c: Case) -> tuple[object, ...]:
        _, gpa, hpa = by_hand(c.va)
        return (hpa, None, None, None, gpa, False, None)

    def case(label: str, access: str, privilege: str = "supervisor", ad: str = "svade") -> Case:
        return cases[ad][label, access, privilege]

    c = case("gstage-ro", "write")                                     # G-stage R|U: a store guest-page fault
    expect(c, gpf(c, 23, by_hand(c.va)[1]), "permission")
    c = case("gstage-ro", "read")
    expect(c, ok(c), "ok", 0b000_001)
    c = case("gstage-xo", "execute")
    expect(c, ok(c), "ok", 0b000_100)
    c = case("gstage-xo", "read")                                      # no MXR: X-only is not readable
    expect(c, gpf(c, 21, by_hand(c.va)[1]), "permission")
    c = case("gstage-no-user", "read")                                 # G-stage leaves need U
    expect(c, gpf(c, 21, by_hand(c.va)[1]), "permission")
    c = case("gstage-gpa-too-wide", "read")                            # GPA bit 41 set: no alias, a fault at
    gpa = by_hand(c.va)[1]                                             # the G-stage root (level 2)
    assert gpa >> 41 == 1
    expect(c, gpf(c, 21, gpa, level=2), "non-canonical")
    c = case("gstage-upper-half", "write")                             # GPA bit 40 is valid
    assert by_hand(c.va)[1] >> 40 == 1
    expect(c, ok(c), "ok", 0b000_111)
    c = case("vs-table-gstage-hole", "execute", "user")                # implicit read of a VS PTE
    expect(c, gpf(c, 20, by_hand(c.va)[0], implicit=1), "invalid")
    c = case("gstage-hole", "read")                                    # the final GPA: explicit
    expect(c, gpf(c, 21, by_hand(c.va)[1]), "invalid")
    c = case("gstage-ro", "write", "user")                             # VS-stage decides first: U=0
    expect(c, pf(c, 15), "permission")
    c = case("vs-table-gstage-ro-a-clear", "read")                     # Svade: A=0 faults
    expect(c, pf(c, 13), "accessed-dirty")
    c = case("vs-table-gstage-ro-a-clear", "read", ad="svadu")         # Svadu: setting A is a G-stage write
    expect(c, gpf(c, 21, by_hand(c.va)[0], implicit=2), "permission", ad="svadu")
    c = case("vs-table-gstage-ro", "write", ad="svadu")                # A=D=1: nothing written
    expect(c, ok(c), "ok", 0b000_111, ad="svadu")


def test_cli_hypervisor_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "h"
    assert main(["vectors", "generate", "--mode", "sv48+sv48x4", "--seed", "3", "--out", str(out), "--sum",
                 "--hs-mxr"]) == 0
    capsys.readouterr()
    assert main(["vectors", "show", str(out), "--cases"]) == 0
    shown = capsys.readouterr().out
    assert "hgatp (stage 2, guest-physical -> host-physical): Sv48x4" in shown and "vsatp (stage 1" in shown
    assert "guest-page-fault at level" in shown and "stage 2" in shown
    assert main(["vectors", "check", str(out)]) == 0
    assert ", 0 failed" in capsys.readouterr().out
    doc = json.loads((out / "vectors.json").read_text())
    assert doc["options"]["vs_sum"] is True and doc["options"]["hs_mxr"] is True
    case = next(c for c in doc["cases"] if c.get("fault") == "guest-page-fault")
    case["gpa"] = hex(int(case["gpa"], 16) + 8)                                  # a wrong GPA is caught
    (out / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(out)]) == 1
    assert "1 failed" in capsys.readouterr().out
    doc["registers"]["vsatp"] = "0x0"
    (out / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(out)]) == 2
    assert "registers.vsatp 0x0 selects Bare, not Sv48" in capsys.readouterr().err
    # status bits a mode has no use for are refused, not dropped
    assert main(["vectors", "generate", "--mode", "sv39x4", "--seed", "1", "--out", str(out), "--sum"]) == 2
    assert "no VS-stage" in capsys.readouterr().err
    assert main(["vectors", "generate", "--mode", "sv39", "--seed", "1", "--out", str(out), "--hs-mxr"]) == 2
    assert "no G-stage" in capsys.readouterr().err
    assert main(["explain", "--register", "hgatp", "0x8000000000080000"]) == 0
    assert "Sv39x4" in capsys.readouterr().out


# ------------------------------------------------------------------ bad input never crashes or lies (issue 9)
def _vector_dir(tmp_path: Path, mode: str = "sv39") -> tuple[Path, dict[str, Any]]:
    generate_riscv(mode, 1, cases=6).write(tmp_path, "")
    return tmp_path, json.loads((tmp_path / "vectors.json").read_text())


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], rc: int = 2) -> str:
    assert main(argv) == rc
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pagetable: error: "), err
    return err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["options"].update(SUM=True), r"options: unknown key 'SUM' for mode sv39 \(expected sum, mxr"),
    (lambda d: d["options"].update(hs_mxr=True), "unknown key 'hs_mxr' for mode sv39"),
    (lambda d: d["options"].update(seed="1"), "options.seed must be an integer"),
    (lambda d: d["options"].update(sum=1), "options.sum must be true or false, not 1"),
    (lambda d: d.update(notes=[]), "unknown key 'notes'"),
    (lambda d: d["memory"][0].update(size="0x10"), r"memory\[0\]: unknown key 'size'"),
    (lambda d: d["memory"].append({"file": "mem.bin", "base": "0x90000000"}),
     r"memory\[1\].file 'mem.bin' is the image of an earlier memory entry"),
    (lambda d: d["memory"].append({"file": "./mem.bin", "base": "0x90000000"}), "image of an earlier"),
    (lambda d: d["memory"][0].update(file=""), "must name a file inside the vector directory"),
    (lambda d: d["memory"][0].update(file="."), "must name a file inside the vector directory"),
    (lambda d: d["memory"][0].update(file="mem\0.bin"), "is not a file name"),             # a ValueError
    (lambda d: d["registers"].update(sapt="0x0"), "registers: unknown key 'sapt' for mode sv39"),
    (lambda d: d["registers"].update({"\n": None}), r"registers: str '\\n' is not a register name"),  # 2 lines
    (lambda d: d["cases"][0].update(stage=True), r"cases\[0\].stage must be 1 or 2, not True"),
    (lambda d: d["cases"][0].update(Label="x"), r"cases\[0\]: unknown key 'Label'"),
    (lambda d: d["cases"][0].update(label=5), r"cases\[0\].label must be printable text"),
    (lambda d: d["cases"][0].update(label="\ud800"), r"cases\[0\].label must be printable text"),   # a traceback
    (lambda d: d["cases"][0].update(reason="\x1b[2J\nfake line"), r"cases\[0\].reason must be printable"),
    (lambda d: d["cases"][0].update(level=True), r"cases\[0\].level must be a level number"),
    (lambda d: d["cases"][0].update(level=10**30), r"cases\[0\].level must be a level number"),
    (lambda d: d["cases"][0].update(implicit=1), r"cases\[0\].implicit must be true or false"),
    (lambda d: d["cases"][1].update(level=0), r"cases\[1\]: unknown key 'level' in a case with 'pa'"),
    (lambda d: d["cases"][1].update(implicit=True), "unknown key 'implicit' in a case with 'pa'"),
    (lambda d: d["cases"][0].pop("syndrome"), r"cases\[0\].syndrome must be an object of register values"),
    (lambda d: d["cases"][0]["syndrome"].update(SCAUSE="0x1"), r"syndrome: str 'SCAUSE' is not a register"),
    (lambda d: d["cases"][0]["syndrome"].update(stval=13), r"cases\[0\].syndrome.stval must be a hex string"),
    (lambda d: d["cases"][1].update(syndrome={}), "unknown key 'syndrome' in a case with 'pa'"),
    (lambda d: d.update(schema="pagetable-vectors/1"), r"cases\[0\]: unknown key 'syndrome'"),
])
def test_reader_rejects_unknown_keys_and_wrong_types(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     edit: object, message: str) -> None:
    """Misspelt options, `"stage": true` and the same image at two bases used to be accepted silently."""
    d, doc = _vector_dir(tmp_path)
    doc["cases"][0] = {"va": "0x1000", "access": "read", "privilege": "user", "fault": "page-fault", "level": 0,
                       "syndrome": {"scause": "0xd", "stval": "0x1000"}}
    doc["cases"][1] = {"va": "0x2000", "access": "read", "privilege": "user", "pa": "0x80001000"}
    edit(doc)  # type: ignore[operator]
    (d / "vectors.json").write_text(json.dumps(doc))
    for action in ("show", "check"):
        err = _error(capsys, ["vectors", action, str(d)])
        assert re.search(message, err), err


def test_reader_rejects_repeated_keys_loose_hex_and_linked_images(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    d, doc = _vector_dir(tmp_path)
    text = json.dumps(doc)
    for edited, message in ((text.replace('"va": ', '"va": "0xdeadbeef", "va": ', 1), "'va' appears twice"),
                            (text.replace('"base": "0x80000000"', '"base": "0x_80000000"'), "not a hex number"),
                            (text.replace('"base": "0x80000000"', '"base": "0x80000000 "'), "not a hex number"),
                            (text.replace('"cases": [', '"cases": [NaN, ', 1), "NaN is not a JSON number")):
        (d / "vectors.json").write_text(edited)
        assert message in _error(capsys, ["vectors", "check", str(d)])
    (d / "link.bin").symlink_to(d / "mem.bin")
    doc["memory"].append({"file": "link.bin", "base": "0x90000000"})
    (d / "vectors.json").write_text(json.dumps(doc))
    assert "is the image of an earlier memory entry" in _error(capsys, ["vectors", "check", str(d)])
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    outside.mkdir()
    (outside / "mem.bin").write_bytes((d / "mem.bin").read_bytes())
    (d / "sub").symlink_to(outside)                        # a name inside, a file outside
    doc["memory"] = [{"file": "sub/mem.bin", "base": "0x80000000"}]
    (d / "vectors.json").write_text(json.dumps(doc))
    assert "leads out of the vector directory" in _error(capsys, ["vectors", "check", str(d)])
    (d / "mem.bin").rename(d / "...")                      # an odd name, but a file in the directory
    doc["memory"] = [{"file": "...", "base": "0x80000000"}]
    (d / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(d)]) == 0


@pytest.mark.parametrize("text", ["[" * 100_000, '{"schema": ' + "9" * 5000 + "}", "\udcff", "\x00\xff\xfe"])
def test_reader_names_the_file_for_text_that_is_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         text: str) -> None:
    """100,000 nested '[' raised RecursionError; a 5,000-digit integer's error named no file."""
    (tmp_path / "vectors.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    err = _error(capsys, ["vectors", "show", str(tmp_path)])
    assert "vectors.json" in err


def test_reader_refuses_an_image_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """mem.bin being a directory raised IsADirectoryError."""
    d, _ = _vector_dir(tmp_path)
    (d / "mem.bin").unlink()
    (d / "mem.bin").mkdir()
    assert "is a directory" in _error(capsys, ["vectors", "check", str(d)])
    (d / "vectors.json").unlink()
    (d / "vectors.json").mkdir()
    assert "vectors.json: not a regular file" in _error(capsys, ["vectors", "check", str(d)])
    (d / "vectors.json").rmdir()
    os.mkfifo(d / "vectors.json")                          # a FIFO blocked for ever
    assert "not a regular file" in _error(capsys, ["vectors", "check", str(d)])
    (d / "vectors.json").unlink()
    (d / "vectors.json").symlink_to("/dev/zero")          # /dev/zero was read until memory ran out
    assert "not a regular file" in _error(capsys, ["vectors", "check", str(d)])


def test_show_of_memory_at_an_unaligned_base_walks_without_an_allocator(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A vector file whose memory starts at 0x80000800 failed with "allocator range ... not frame-aligned"."""
    d, doc = _vector_dir(tmp_path)
    doc["memory"][0]["base"] = "0x80000800"                  # the root (0x80000000) is now outside RAM
    (d / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "show", str(d)]) == 0
    out = capsys.readouterr().out
    assert "allocator" not in out
    assert "the level-2 table for VA 0x0 is at 0x80000000, outside RAM: not walked" in out
    assert main(["vectors", "check", str(d)]) == 1           # every expectation now differs, and check says so


@pytest.mark.parametrize(("argv", "message"), [
    (["0x10000000000000000"], "RISC-V PTE value 0x10000000000000000 does not fit in 64 bits"),
    (["0x" + "f" * 100], "does not fit in 64 bits"),
    (["-1"], "RISC-V PTE value -1 is negative"),
    (["-0x1"], "RISC-V PTE value -1 is negative"),          # argparse took it for an unknown option
    (["--register", "hgatp", "0x10000000000000000"], "hgatp value 0x10000000000000000 does not fit"),
    (["--register", "hgatp", "-0x1"], "hgatp value -1 is negative"),
    (["--register", "satp", "-7"], "satp value -7 is negative"),
])
def test_explain_refuses_values_that_do_not_fit(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                message: str) -> None:
    """`explain 0x10000000000000000` decoded as 0, 100 hex digits as 2**64-1, -1 as all ones."""
    assert message in _error(capsys, ["explain", *argv])


@pytest.mark.parametrize(("value", "says"), [
    ("0x2", "-> at Sv39 level 0: invalid (V=0"),                  # was called a leaf
    ("0x5", "-> at Sv39 level 1: page fault (w-without-r)"),       # was "pointer to the next level"
    ("0x80000000200800c1", "-> at Sv39 level 2: page fault (reserved)"),
    ("0x20080001", "-> at Sv39 level 0: page fault (non-leaf-at-last-level)"),
])
def test_explain_judges_an_entry_as_the_walk_rules_do(capsys: pytest.CaptureFixture[str], value: str,
                                                      says: str) -> None:
    assert main(["explain", value]) == 0
    assert says in capsys.readouterr().out


@pytest.mark.parametrize(("register", "value", "says"), [
    ("hgatp", "0x8c00000000080001", ["root table at PA 0x80000000 (PPN[1:0] read as zero)",
                                     "bits 59:58 are set but belong to no field"]),
    ("hgatp", "0xb000000000080000", ["hgatp's fields are WARL: the write is not ignored"]),
    ("satp", "0xf000000000000000", ["MODE     = 15 (1111)  reserved", "-> MODE 15 is reserved"]),
    ("satp", "0x8000000000080000", ["-> Sv39, root table at PA 0x80000000; ASID 0"]),
])
def test_explain_registers(capsys: pytest.CaptureFixture[str], register: str, value: str, says: list[str]) -> None:
    """Reserved MODEs are named (satp: the write has no effect; hgatp: WARL), hgatp's PPN[1:0] read as zero,
    and set bits of no field are shown."""
    assert main(["explain", "--register", register, value]) == 0
    out = capsys.readouterr().out
    assert all(line in out for line in says), out


@pytest.mark.parametrize(("cases", "message"), [
    ("-1", "cases -1 must be at least 1"),                # "Sample larger than population or is negative"
    ("0", "cases 0 must be at least 1"),                  # wrote 0 cases
    ("100000000", "100,000,000 cases are more than a vector set holds (1,000,000"),   # a minute, MemoryError
])
def test_generate_bounds_the_number_of_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str], cases: str,
                                             message: str) -> None:
    err = _error(capsys, ["vectors", "generate", "--mode", "sv39", "--seed", "1", "--out", str(tmp_path / "v"),
                          "--cases", cases])
    assert message in err
    assert not (tmp_path / "v").exists()


def test_syndromes_are_recorded_checked_and_version_1_still_reads(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Version 2 records what each fault reports (scause: a load page fault is 13, stval the VA); `check`
    compares it; a version 1 file (no syndromes) is still read and checked."""
    d, doc = _vector_dir(tmp_path)
    fault = next(c for c in doc["cases"] if "fault" in c and c["access"] == "read" and c["fault"] == "page-fault")
    assert fault["syndrome"] == {"scause": "0xd", "stval": fault["va"]}
    assert all(("syndrome" in c) == ("fault" in c) for c in doc["cases"])
    fault["syndrome"]["scause"] = "0xf"
    (d / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(d)]) == 1
    assert "syndrome) = " in capsys.readouterr().out
    for c in doc["cases"]:
        c.pop("syndrome", None)
    doc["schema"] = "pagetable-vectors/1"
    (d / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(d)]) == 0
    assert VectorSet.read(d).cases[0].syndrome is None


def test_show_coverage_counts_every_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`vectors show --coverage`: per stage, the cases by outcome and level; its fault counts are the set's
    own (each fault case records its reason, level and stage), its translations add up, and the levels
    without a translation or a fault are named."""
    vs = generate_riscv("sv39", 1)
    vs.write(tmp_path, "")
    assert main(["vectors", "show", str(tmp_path), "--coverage"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index(f"coverage: {len(vs.cases)} cases walked again") + 1:]
    assert table[0] == "  stage 1 (Sv39), cases ending at level:      2      1      0"
    rows = {line[:38].strip(): [0 if x == "-" else int(x) for x in line[38:].split()] for line in table[1:]
            if line.startswith("    ")}
    faults = collections.Counter((c.reason, c.level) for c in vs.cases if c.fault is not None)
    for reason, counts in rows.items():
        if reason != "ok (translation)":
            assert counts == [faults[reason, level] for level in (2, 1, 0)], reason
    assert sum(rows["ok (translation)"]) == sum(c.pa is not None for c in vs.cases)
    assert sum(map(sum, rows.values())) == len(vs.cases)
    gaps = [f"a translation at stage 1 level {lv}" for lv, n in zip((2, 1, 0), rows["ok (translation)"], strict=True)
            if not n]
    gaps += [f"a fault at stage 1 level {lv}" for k, lv in enumerate((2, 1, 0))
             if not any(counts[k] for reason, counts in rows.items() if reason != "ok (translation)")]
    assert table[-1] == (f"  no case reaches: {'; '.join(gaps)}" if gaps else
                         "  every level has a translation (where a leaf may be) and a fault")


@pytest.mark.parametrize(("mode", "options", "writes"), [
    ("x86_64-4level", [], True), ("sv39", ["--ad", "svadu"], True), ("sv39", [], False)],
    ids=["x86-a-d", "riscv-svadu", "riscv-svade"])
def test_hardware_updates_image(mode: str, options: list[str], writes: bool, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """`generate --hardware-updates` writes mem-after.bin: the image after the cases ran in order. It
    differs from mem.bin only in entries, by bits set (A/D), the cases translate on it as on mem.bin, and
    running them again writes nothing more. Svade hardware writes nothing."""
    from pagetable.vectors.updates import after_accesses
    assert main(["vectors", "generate", "--mode", mode, "--seed", "3", "--out", str(tmp_path), "--hardware-updates",
                 *options]) == 0
    capsys.readouterr()
    vs = VectorSet.read(tmp_path)
    before = np.fromfile(tmp_path / "mem.bin", dtype="<u8")
    after = np.fromfile(tmp_path / "mem-after.bin", dtype="<u8")
    changed = np.flatnonzero(before != after)
    assert (changed.size > 0) == writes
    assert np.all(after[changed] & before[changed] == before[changed])          # bits set, none cleared
    again = VectorSet(vs.arch, vs.mode, PhysMem([(vs.mem.regions[0].base, after.view(np.uint8).copy())]),
                      vs.registers, vs.options, vs.cases)
    walker = registry.walker_for(again)
    t = walker.translate_many(*again.lanes())
    assert t.pa[t.reason == 0].tolist() == [c.pa for c in vs.cases if c.pa is not None]
    assert after_accesses(again, walker)[1] == 0                                 # nothing left to write
