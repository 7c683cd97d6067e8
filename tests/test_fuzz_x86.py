"""Fuzz the table readers with adversarial x86-64 table images (4-level and 5-level paging): random and
hostile entries (cycles, self-maps, shared tables, tables and pages outside RAM, PS where it is reserved,
reserved address and page bits, XD without NXE, protection keys) under random CR0/CR4/EFER/PKRU options,
through `PageTable.walk`, `Walker.mappings`, `ptdump` and `translate_many`, with the properties of
tests/test_fuzz_tables.py: an answer, never an exception or a hang; bounded listings; the hardware listing
in agreement with the walker access by access; bulk and one-lane walks in agreement lane by lane."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pagetable.arch.x86_64 import X86Options, X86Rules
from pagetable.errors import PagetableError
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.walker import Walker

from .fuzzing import fuzz
from .test_fuzz_tables import FRAMES, VAS, _check

RAM = 0x8000_0000


def x86_entries(ram: int, frames: int) -> st.SearchStrategy[int]:
    """x86 entries an adversary writes: pointers back into the `frames` frames (cycles, self-maps) with any
    of the low flags, pages (PS) with any flags and PAT, entries with reserved bits (51:40, 29:13), keys,
    XD, and anything at all."""
    frame = st.integers(0, frames - 1).map(lambda f: ram + f * 4096)
    return st.one_of(
        st.tuples(frame, st.integers(0, 0x7F)).map(lambda t: t[0] | t[1] | 1),                 # pointer
        st.tuples(frame, st.integers(0, 0x1FF)).map(lambda t: t[0] | t[1] | 0x81),             # page (PS)
        st.tuples(frame, st.integers(0, 0xFFF), st.integers(0, 0xFFF)).map(                   # high bits
            lambda t: t[2] << 52 | t[0] | t[1]),
        st.tuples(frame, st.sampled_from([1 << 13, 1 << 20, 1 << 29, 1 << 45, 1 << 63])).map(
            lambda t: t[0] | t[1] | 0x87),
        st.integers(0, (1 << 64) - 1),
        st.just(0),
    )


@st.composite
def images(draw: st.DrawFn, root: int) -> PhysMem:
    """FRAMES frames of RAM at RAM: walks from the root frame `root` down through chosen frames with
    random flags at every level (so that rights combine across levels), whole frames of one entry, frames
    of entries naming consecutive pages, and single entries."""
    mem = PhysMem([(RAM, FRAMES * 4096)])
    words = mem.regions[0].words
    entries = x86_entries(RAM, FRAMES)
    for path in draw(st.lists(st.lists(st.tuples(st.integers(0, 511), st.integers(0, FRAMES - 1),
                                                 st.integers(0, 0xFFF) | st.just(0x7)), min_size=1, max_size=5),
                              max_size=8)):
        table = root
        for index, frame, flags in path:           # entry `index` of `table` points at `frame` (or maps it)
            words[table * 512 + index] = RAM + frame * 4096 | flags | 1 | draw(st.sampled_from([0, 1 << 63]))
            table = frame
    for frame, value in draw(st.lists(st.tuples(st.integers(0, FRAMES - 1), entries), max_size=6)):
        words[frame * 512:(frame + 1) * 512] = value
    for frame, value in draw(st.lists(st.tuples(st.integers(0, FRAMES - 1), entries), max_size=3)):
        words[frame * 512:(frame + 1) * 512] = np.uint64(value) + np.arange(512, dtype=np.uint64) * np.uint64(4096)
    for index, value in draw(st.lists(st.tuples(st.integers(0, FRAMES * 512 - 1), entries), max_size=120)):
        words[index] = value
    return mem


OPTIONS = st.builds(X86Options, wp=st.booleans(), smep=st.booleans(), smap=st.booleans(), ac=st.booleans(),
                    nxe=st.booleans(), maxphyaddr=st.sampled_from([40, 46, 52]), gbpages=st.booleans(),
                    pke=st.booleans(), pks=st.booleans(), pkru=st.integers(0, (1 << 32) - 1),
                    pkrs=st.integers(0, (1 << 32) - 1), implicit=st.booleans())


@fuzz(short=30, long=1_500)
@given(st.integers(0, FRAMES - 1).flatmap(lambda r: st.tuples(st.just(r), images(r))), st.booleans(), OPTIONS, VAS)
def test_x86_tables(image: tuple[int, PhysMem], la57: bool, options: X86Options, vas: list[int]) -> None:
    root_frame, mem = image
    root = RAM + root_frame * 4096
    walker = Walker(mem, X86Rules(root, dataclasses.replace(options, la57=la57)))
    fmt = walker.rules.regime.regions[0].fmt
    _check(walker, walker, fmt, root, mem, vas, f"tables: x86 {'5' if la57 else '4'}-level")
    pt = PageTable(fmt, mem, FrameAllocator(mem), root=root)   # the software view's single calls at the
    listed = walker.mappings().va.tolist()[:24]                 # VAs given and listed (unmap writes: last)
    for va in [v for v in vas if fmt.is_canonical(v)][:8] + listed:
        for call in (pt.query, pt.lookup, pt.unmap):
            with contextlib.suppress(PagetableError):            # an answer or a library error, no other
                call(va)
