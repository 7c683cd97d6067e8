"""Fuzz the QEMU monitor listings (pagetable.dump.qemu_monitor) with adversarial tables: entries pointing back
into their own frames (loops, self-maps, tables shared by many entries), outside RAM, with every flag and
reserved-bit combination, and anything at all; and random ranges.

The property, for every input: the listing comes out well-formed (each line of its format, in VA order, and
for x86 4-level paging every `info tlb` page inside an `info mem` range) or the walk is refused with
PagetableError (too many tables when every reference is followed); never another exception, a hang, or
memory beyond a small multiple of the tables' size."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from pagetable import registry
from pagetable.dump.qemu_monitor import RISCV_HEADER, info_mem_lines, info_tlb_lines
from pagetable.errors import PagetableError
from pagetable.physmem import PhysMem
from pagetable.walker import Walker

from .fuzzing import bounded, count, fuzz, table_entries

RAM = 0x8000_0000
FRAMES = 4
TLB = re.compile(r"[0-9a-f]{16}: [0-9a-f]{16} [X-][G-][P-][D-][A-][C-][T-][U-][W-]")
X86_MEM = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16}) [0-9a-f]{16} [u-]r[w-]")
RISCV_MEM = re.compile(r"([0-9a-f]{16}) [0-9a-f]{16} ([0-9a-f]{16}) [r-][w-][x-][u-][g-][a-][d-]")


def x86_entries() -> st.SearchStrategy[int]:
    """x86 entries: pointers into the frames with any low 12 bits (P, R/W, U/S, PS ...), with high bits
    (XD, reserved, beyond MAXPHYADDR), outside RAM, and anything."""
    frame = st.integers(0, FRAMES - 1).map(lambda f: RAM + f * 4096)
    return st.one_of(
        st.tuples(frame, st.integers(0, 0xFFF)).map(lambda t: t[0] | t[1] | 1),
        st.tuples(frame, st.integers(0, 0xFFF), st.integers(0, 0xFFF)).map(lambda t: t[2] << 52 | t[0] | t[1]),
        st.integers(0, (1 << 64) - 1),
        st.just(0),
    )


def _memory(entries: list[tuple[int, int]]) -> PhysMem:
    mem = PhysMem([(RAM, FRAMES * 4096)])
    for slot, value in entries:
        mem.write_u64(RAM + 8 * slot, value)
    return mem


def _walker(arch: str, mem: PhysMem, registers: dict[str, int]) -> Walker:
    make = registry.by_name(arch).walker_from_registers
    assert make is not None
    return make(mem, registers, 40 if arch == "x86_64" else None)


def _range() -> st.SearchStrategy[tuple[int | None, int | None]]:
    bound = st.one_of(st.none(), st.integers(0, (1 << 64) - 1))
    return st.tuples(bound, bound)


def _slots(values: st.SearchStrategy[int]) -> st.SearchStrategy[list[tuple[int, int]]]:
    return st.lists(st.tuples(st.integers(0, FRAMES * 512 - 1), values), max_size=40)


@fuzz(short=60, long=3000)
@given(_slots(x86_entries()), st.booleans(), _range())
def test_x86_listings(entries: list[tuple[int, int]], la57: bool, bounds: tuple[int | None, int | None]) -> None:
    count("qemu_monitor.x86")
    walker = _walker("x86_64", _memory(entries), {"cr0": 0x8000_0011, "cr3": RAM, "cr4": 0x20 | (la57 << 12),
                                                  "efer": 0xD00})
    with bounded(10, 64 << 20):
        try:
            mem = list(info_mem_lines(walker, *bounds))
            tlb = list(info_tlb_lines(walker, *bounds))
        except PagetableError as e:
            assert "when every reference is followed" in str(e)
            return
    assert all(TLB.fullmatch(line) for line in tlb), tlb
    assert all(X86_MEM.fullmatch(line) for line in mem), mem
    vas = [int(line[:16], 16) for line in tlb]
    assert vas == sorted(vas)
    if not la57 and bounds == (None, None):        # every present leaf has P in its AND: inside a range
        ranges = [(int(line[:16], 16), int(line[17:33], 16)) for line in mem]
        top = 1 << 48                              # the last range may end there, printed unextended
        assert all(any(a <= va < (b if b != top else 1 << 64) for a, b in ranges) for va in vas)


@fuzz(short=60, long=3000)
@given(_slots(table_entries(RAM, FRAMES)), st.sampled_from([8, 9, 10]), _range())
def test_riscv_listing(entries: list[tuple[int, int]], mode: int, bounds: tuple[int | None, int | None]) -> None:
    count("qemu_monitor.riscv")
    walker = _walker("riscv64", _memory(entries), {"satp": mode << 60 | RAM >> 12})
    with bounded(10, 64 << 20):
        try:
            lines = list(info_mem_lines(walker, *bounds))
        except PagetableError as e:
            assert "when every reference is followed" in str(e)
            return
    assert lines[:2] == list(RISCV_HEADER)
    found = [RISCV_MEM.fullmatch(line) for line in lines[2:]]
    assert all(found), lines
    starts = [int(m.group(1), 16) for m in found if m]
    assert starts == sorted(starts)
    assert all(int(m.group(2), 16) % 4096 == 0 and int(m.group(2), 16) for m in found if m)
