"""The x86-64 vector modes with a nested stage (x86_64-npt, x86_64-4level+npt, x86_64-ept4,
x86_64-4level+ept4): the reasons and stages each covers, SDM/APM spot checks of their syndromes,
registers, determinism, `vectors check` on a fresh set and on one with a flipped nested entry bit, and the
command line."""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pagetable.arch.x86_64 import EPTP
from pagetable.arch.x86_64.ept import W as EPT_W
from pagetable.arch.x86_64.ept_walk import QUAL_FINAL, QUAL_LINEAR_VALID
from pagetable.arch.x86_64.npt import EXITINFO1_FINAL
from pagetable.cli import main
from pagetable.errors import InvalidArgument
from pagetable.vectors import VectorSet
from pagetable.vectors.schema import Case
from pagetable.vectors.x86_64.gen import RegisterChoices, generate_x86
from pagetable.vectors.x86_64.modes import walker_for

NESTED = ("x86_64-npt", "x86_64-4level+npt", "x86_64-ept4", "x86_64-4level+ept4")


def _syndrome(c: Case) -> dict[str, int]:
    assert c.syndrome is not None, c
    return dict(c.syndrome)


def _seen(vs: VectorSet) -> set[tuple[str, int]]:
    return {(c.reason, c.stage if c.stage is not None else 1) for c in vs.cases}


@pytest.mark.parametrize("seed", [1, 2])
def test_ept_alone_covers_violations_and_every_misconfiguration(seed: int) -> None:
    vs = generate_x86("x86_64-ept4", seed)
    assert set(vs.registers) == {"eptp"} and EPTP.get(vs.registers["eptp"], "WALK") == 3
    by = {(c.label, c.access): c for c in vs.cases if c.privilege == "supervisor"}
    kinds = {label: by[label, "read"].fault for label, _ in by}
    for label in ("ept-w-only", "ept-wx-no-r", "ept-mt2", "ept-mt3", "ept-mt7", "ept-rsvd-2M-bits",
                  "ept-rsvd-1G-bits", "ept-rsvd-pml4e-bits", "ept-ps-in-pml4e", "ept-rsvd-pde-table-bits",
                  "ept-upper-w-only", "ept-rsvd-maxphyaddr-L1", "ept-rsvd-maxphyaddr-L4"):
        assert kinds[label] == "ept-misconfiguration", label
        assert _syndrome(by[label, "read"])["exit_qualification"] == 0
    for label in ("ept-unmapped-L1", "ept-unmapped-L4", "ept-gpa-too-wide"):
        assert kinds[label] == "ept-violation", label
    assert by["ept-x", "execute"].fault is None and by["ept-x", "read"].fault == "ept-violation"
    assert _syndrome(by["ept-r", "write"])["exit_qualification"] == 0b1010          # write; readable
    assert by["ept-upper-no-w", "write"].fault == "ept-violation"
    assert by["ept-upper-x-only", "execute"].fault is None
    assert (by["ept-wt", "read"].memtype, by["ept-device-uc", "read"].memtype) == ("wt", "uc")
    assert by["ept-rw", "read"].syndrome is None


def test_npt_alone_makes_every_access_a_user_access() -> None:
    vs = generate_x86("x86_64-npt", 3)
    assert set(vs.registers) == {"ncr3", "host_pat"}
    by = {(c.label, c.access, c.privilege): c for c in vs.cases}
    a, b = by["kernel-rw", "read", "supervisor"], by["kernel-rw", "read", "user"]
    assert a.fault is None and b.fault is None                       # U/S=1 in every nested entry
    up = by["upper-us0-L3", "read", "supervisor"]                    # a U/S=0 nested entry: a user fault
    assert up.fault == "nested-page-fault" and _syndrome(up)["exitinfo1"] == 0x5 | EXITINFO1_FINAL
    assert by["gpa-too-wide", "read", "supervisor"].fault == "nested-page-fault"


@pytest.mark.parametrize("mode", ["x86_64-4level+npt", "x86_64-4level+ept4"])
def test_two_stage_modes_have_guest_faults_and_nested_faults_on_tables_and_final_addresses(mode: str) -> None:
    ept = mode.endswith("ept4")
    seen = set()
    for seed in (1, 2, 3, 4):                               # EPTP's A/D enable is the seed's
        vs = generate_x86(mode, seed)
        seen |= _seen(vs)
        by = {(c.label, c.access, c.privilege): c for c in vs.cases}
        final = by["nested-ro", "write", "supervisor"]
        assert (final.fault, final.stage, final.implicit) == ("ept-violation" if ept else "nested-page-fault", 2,
                                                              False)
        if ept:
            assert _syndrome(final)["exit_qualification"] & (QUAL_LINEAR_VALID | QUAL_FINAL) == 0x180
            assert _syndrome(final)["guest_linear"] == final.va
        else:
            assert _syndrome(final)["exitinfo1"] == 0x7 | EXITINFO1_FINAL and _syndrome(final)["exitinfo2"] == final.gpa
        table = by["guest-table-nested-ro", "read", "supervisor"]       # A/D set: only the access kind matters
        ad = bool(EPTP.get(vs.registers["eptp"], "AD")) if ept else True
        assert (table.fault is not None) == ad, (seed, table)
        if table.fault:
            assert table.implicit and table.stage == 2
        clear = by["guest-table-nested-ro-a-clear", "read", "supervisor"]   # the A update is a write
        assert clear.fault is not None and clear.implicit
        assert by["guest-table-nested-rw-a-clear", "read", "supervisor"].fault is None
        assert by["user-rw", "write", "user"].fault is None
        assert by["unmapped-L2", "read", "user"].fault == "page-fault"     # the guest's own #PF
    assert {("invalid", 2), ("permission", 2), ("invalid", 1), ("permission", 1), ("reserved", 1), ("ok", 1)} <= seen


@pytest.mark.parametrize("mode", NESTED)
def test_fresh_sets_check_and_a_flipped_nested_bit_fails(mode: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", mode, "--seed", "6", "--out", str(out)]) == 0
    assert main(["vectors", "check", str(out)]) == 0
    assert main(["vectors", "show", str(out)]) == 0
    capsys.readouterr()
    vs = VectorSet.read(out)
    nested = walker_for(vs).stage2 or walker_for(vs)
    ok = next(c for c in vs.cases if c.fault is None and c.access == "write")
    gpa = ok.gpa if ok.gpa is not None else ok.va
    pte = nested.translate(gpa, "write", "user").pte
    image = np.fromfile(out / "mem.bin", dtype=np.uint64)
    slots = np.flatnonzero(image == np.uint64(pte))
    image[slots[0]] ^= np.uint64(EPT_W if "ept" in mode else 2)           # the nested leaf: no writes
    image.tofile(out / "mem.bin")
    assert main(["vectors", "check", str(out)]) == 1
    assert f"{ok.va:#x} write" in capsys.readouterr().out


def test_register_choices_do_not_apply_without_linear_address_paging() -> None:
    with pytest.raises(InvalidArgument, match="no linear-address paging"):
        generate_x86("x86_64-ept4", 1, choice=RegisterChoices(ac=True))
    assert generate_x86("x86_64-4level+ept4", 1, cases=4, choice=RegisterChoices(ac=True)).registers["rflags"] & 1 << 18


def test_explain_nested_registers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--arch", "x86_64", "--register", "eptp", "0x105e"]) == 0
    out = capsys.readouterr().out
    assert "WALK" in out and "AD" in out


@pytest.mark.parametrize("mode", NESTED)
def test_the_same_seed_gives_the_same_bytes(mode: str, tmp_path: Path) -> None:
    for n in (1, 2):
        generate_x86(mode, 7).write(tmp_path / str(n), "readme\n")
    for name in ("mem.bin", "vectors.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
    assert collections.Counter(c.label for c in generate_x86(mode, 7).cases) != \
        collections.Counter(c.label for c in generate_x86(mode, 8, cases=10).cases)
    assert hashlib.sha256((tmp_path / "1" / "mem.bin").read_bytes()).hexdigest() != \
        hashlib.sha256(generate_x86(mode, 8).mem.regions[0].data.tobytes()).hexdigest()
