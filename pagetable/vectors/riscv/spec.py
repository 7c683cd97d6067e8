"""RISC-V's part of `pagetable vectors build` (docs/vectors-spec.md): the scaffold of every vector mode and
the deliberate faults of the privileged spec ("Virtual Address Translation Process", Svnapot, Svpbmt).

One stage: the tables and data in RAM (default 8 MiB at 0x8000_0000, QEMU virt's RAM; `[[memory]]` may name
others; frames come from the first region). Sv32 (RV32): the same, RAM tagged by u32 (`qemu32.tag`), "outside
RAM" a PA above 4 GiB (bits 33:32 set), and none of the kinds built on PTE bits 63:54 (a 4-byte PTE has none).
The G-stage alone: the same, case VAs being guest-physical (Sv32x4: "outside RAM" a PA with bit 32 set,
`GSTAGE_ABOVE_4G`). Two stages: host RAM 16 MiB at 0x8000_0000; the G-stage maps guest RAM (GPA 0x8000_0000,
8 MiB) to its second half, and the 1 GiB at GPA `OUTSIDE_GPA` (4 GiB) to host PAs with no RAM (so a VS-stage
fault can reach "outside RAM"; Sv32x4: from 0x1_8000_0000); the VS-stage tables are in guest RAM.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

from ...arch.riscv_sv39.entry import PBMT_IO, PBMT_NC, PBMT_RESERVED, PTE, A, D, G, R, U, V
from ...arch.riscv_sv39.entry import ppn_field as ppn
from ...errors import InvalidArgument
from ...flags import MappingFlags as F
from ...format import PagingFormat
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ...translation import MemoryType, Reason
from ..build import FaultRule, FaultSite, Scaffold, SpecArch, Where, set_bits
from ..generation import TableBuilder
from ..schema import U64
from ..spec import Spec
from .builder import GSTAGE_ABOVE_4G, GUEST_BACKING, GUEST_RAM, RAM_BASE, RAM_SIZE, outside_ram, tag_memory
from .modes import options_from_json, vector_mode, xlen

OUTSIDE_GPA = 1 << 32
"""Two stages: the first GPA of the 1 GiB window the G-stage maps to host PAs without RAM."""
_PBMT = PTE.mask("PBMT")
_N = PTE.mask("N")
_RESERVED_BITS = range(54, 61)         # PTE bits 60:54, reserved for future standard use
_ABOVE_BIT_31 = ("reserved-bit", "pbmt-reserved", "table-pbmt", "table-napot", "napot-bad-ppn", "napot-superpage")
"""The kinds built on PTE bits 60:54, PBMT or N, which Sv32's 4-byte PTEs do not have."""


def _codec_with_svpbmt(fmt: PagingFormat, svpbmt: bool) -> PagingFormat:
    """`fmt` whose codec decodes PBMT as the hart does (Svpbmt on or off)."""
    return fmt.with_codec(dataclasses.replace(fmt.codec, svpbmt=svpbmt))  # type: ignore[type-var]


def _table(fmt: PagingFormat, rng: random.Random, mem: PhysMem, frames: FrameAllocator) -> TableBuilder:
    """A table of `fmt` (its codec gives a G-stage's leaves U=1) with its root in `frames`."""
    return TableBuilder(fmt, rng, mem, frames, V, ppn)


def scaffold(spec: Spec, reserve: Callable[[FrameAllocator, int], None]) -> Scaffold:
    vm = vector_mode(spec.mode)
    options = options_from_json(vm, spec.options)
    rng = random.Random(spec.seed)
    svpbmt = options.svpbmt
    if vm.gstage is None or vm.stage1 is None:
        fmt = vm.stage1 or vm.gstage
        assert fmt is not None
        mem = PhysMem(spec.memory or [(RAM_BASE, RAM_SIZE)])
        tag_memory(mem, vm.xlen)
        frames = FrameAllocator(mem)
        reserve(frames, 1 if vm.stage1 else 2)
        b = _table(_codec_with_svpbmt(fmt, svpbmt), rng, mem, frames)
        if vm.stage1 is not None:
            return Scaffold(mem, [b], None, lambda: vm.registers_for(b.pt.root_paddr, None, spec.asid),
                            options.to_json(), outside_ram(fmt))
        return Scaffold(mem, [], b, lambda: vm.registers_for(None, b.pt.root_paddr, spec.asid), options.to_json(),
                        outside_ram(fmt, high=GSTAGE_ABOVE_4G))
    if spec.memory is not None:
        raise InvalidArgument("memory: the two-stage modes have a fixed layout (host RAM 16 MiB at 0x80000000, guest "
                              "RAM 8 MiB at GPA 0x80000000); leave [[memory]] out")
    host = PhysMem([(RAM_BASE, 2 * RAM_SIZE)])
    tag_memory(host, vm.xlen)
    host_frames = FrameAllocator(host, RAM_BASE, RAM_SIZE)
    reserve(host_frames, 2)
    g = _table(_codec_with_svpbmt(vm.gstage, svpbmt), rng, host, host_frames)
    g.pt.map_region(GUEST_RAM, GUEST_BACKING, RAM_SIZE, F.READ | F.WRITE | F.EXECUTE | F.USER, allow_huge=True)
    outside = outside_ram(vm.gstage, high=GSTAGE_ABOVE_4G)
    g.pt.map_region(OUTSIDE_GPA, outside, 1 << 30, F.READ | F.WRITE | F.EXECUTE | F.USER, allow_huge=True)
    guest = PhysMem([(GUEST_RAM, host.view(GUEST_BACKING, RAM_SIZE))])     # the same bytes, at their GPAs
    guest_frames = FrameAllocator(guest)
    reserve(guest_frames, 1)
    s1 = _table(_codec_with_svpbmt(vm.stage1, svpbmt), rng, guest, guest_frames)
    return Scaffold(host, [s1], g, lambda: vm.registers_for(s1.pt.root_paddr, g.pt.root_paddr, spec.asid),
                    options.to_json(), outside, OUTSIDE_GPA)


def _bad_napot_ppn(s: FaultSite) -> int:
    """A 4 KiB leaf with N=1 whose PPN[3:0] is one of the reserved values (every value but 1000)."""
    nibble = s.rng.choice([k for k in range(16) if k != 0b1000])
    return (s.leaf() & ~ppn(0xF000)) | _N | ppn(nibble << 12)


def rules(b: TableBuilder) -> Mapping[str, FaultRule]:
    """The named faults of a RISC-V table (a G-stage one's leaves keep U=1, as it needs; Sv32's none of
    `_ABOVE_BIT_31`)."""
    reserved = frozenset({Reason.RESERVED})

    def table_with(bits: int) -> Callable[[FaultSite], int]:
        return lambda s: s.table() | bits

    kinds = {
        "invalid-bits": FaultRule("a leaf with V=0 and its other bits set", frozenset({Reason.INVALID}),
                                  lambda s: s.leaf() & ~V, Where.ANY),
        "w-without-r": FaultRule("a leaf with W=1 and R=0 (reserved)", frozenset({Reason.W_WITHOUT_R}),
                                 lambda s: s.leaf() & ~R, Where.LEAF),
        "wx-without-r": FaultRule("a leaf with W=1, X=1 and R=0 (reserved)", frozenset({Reason.W_WITHOUT_R}),
                                  lambda s: s.leaf(F.READ | F.WRITE | F.EXECUTE) & ~R, Where.LEAF),
        "reserved-bit": FaultRule("an entry (a leaf at the last level, a table entry above) with one of bits 60:54 "
                                  "set", reserved, lambda s: (s.leaf() if s.last else s.table())
                                  | 1 << s.rng.choice(_RESERVED_BITS), Where.ANY),
        "pbmt-reserved": FaultRule("a leaf with PBMT=3 (reserved)", reserved,
                                   lambda s: s.leaf() | PTE.set(0, "PBMT", PBMT_RESERVED), Where.LEAF, needs="svpbmt"),
        "table-pbmt": FaultRule("a table entry with PBMT nonzero (reserved in non-leaf PTEs)", reserved,
                                lambda s: s.table() | PTE.set(0, "PBMT", s.rng.choice((PBMT_NC, PBMT_IO))),
                                Where.TABLE, needs="svpbmt"),
        "table-napot": FaultRule("a table entry with N=1 (reserved in non-leaf PTEs)", reserved, table_with(_N),
                                 Where.TABLE, needs="svnapot"),
        "table-accessed": FaultRule("a table entry with A=1 (reserved in non-leaf PTEs)", reserved, table_with(A),
                                    Where.TABLE),
        "table-dirty": FaultRule("a table entry with D=1 (reserved in non-leaf PTEs)", reserved, table_with(D),
                                 Where.TABLE),
        "table-user": FaultRule("a table entry with U=1 (reserved in non-leaf PTEs)", reserved, table_with(U),
                                Where.TABLE),
        "napot-bad-ppn": FaultRule("a 4 KiB leaf with N=1 and PPN[3:0] other than 1000 (reserved)", reserved,
                                   _bad_napot_ppn, Where.LAST, needs="svnapot"),
        "napot-superpage": FaultRule("a superpage with N=1 (Svnapot defines N for 4 KiB leaves only)", reserved,
                                     lambda s: s.leaf() | _N, Where.SUPERPAGE, needs="svnapot"),
        "misaligned-superpage": FaultRule("a superpage whose PPN has low bits set",
                                          frozenset({Reason.MISALIGNED_SUPERPAGE}),
                                          lambda s: s.leaf(pa=(s.block_pa() & ~(s.span - 1)) + 0x1000),
                                          Where.SUPERPAGE),
        "accessed-clear": FaultRule("a leaf with A=0 (a page fault under Svade)", frozenset({Reason.ACCESSED_DIRTY}),
                                    lambda s: s.leaf() & ~A, Where.LEAF),
        "dirty-clear": FaultRule("a writable leaf with D=0 (a page fault on a write under Svade)",
                                 frozenset({Reason.ACCESSED_DIRTY}), lambda s: s.leaf() & ~D, Where.LEAF, "write"),
        "pointer-at-last-level": FaultRule("a pointer (R=W=X=0) at the last level",
                                           frozenset({Reason.NON_LEAF_AT_LAST_LEVEL}),
                                           lambda s: V | ppn(s.b.frames.alloc()), Where.LAST),
    }
    return {k: rule for k, rule in kinds.items() if xlen(b.fmt) == 64 or k not in _ABOVE_BIT_31}


def _global_field(b: TableBuilder) -> tuple[int, int]:
    return (0, 0) if b.fmt.codec.gstage else (G, G)   # type: ignore[attr-defined]   # G-stage PTEs: G reserved


def _memtype_field(b: TableBuilder, huge: bool) -> tuple[int, tuple[int, ...]]:
    if xlen(b.fmt) == 32:                              # no PBMT in a 4-byte PTE: the PMA's type only
        return 0, (0,)
    return _PBMT, tuple(PTE.set(0, "PBMT", k) for k in (0, PBMT_NC, PBMT_IO))


def _accessed_dirty(b: TableBuilder, raw: U64, accessed: bool | None, dirty: bool | None) -> U64:
    """A and D of RISC-V leaves (with Svadu, `ad = "svadu"`, the hardware sets them; with Svade an access
    faults on them)."""
    return set_bits(set_bits(raw, A, accessed), D, dirty)


SPEC_ARCH = SpecArch(scaffold, lambda mode: vector_mode(mode).stage1 is not None, rules, _global_field,
                     _memtype_field, (MemoryType.DEFAULT, MemoryType.RISCV_NC, MemoryType.RISCV_IO),
                     "PBMT: nc and io need svpbmt = true in [options]", _accessed_dirty)

__all__ = ["OUTSIDE_GPA", "SPEC_ARCH", "rules", "scaffold"]
