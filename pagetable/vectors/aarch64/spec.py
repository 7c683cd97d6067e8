"""AArch64's part of `pagetable vectors build` (docs/vectors-spec.md): the scaffold of every vector mode and
the deliberate faults of Arm ARM DDI 0487 D8 (Translation, Address size and Access flag faults).

One stage: the tables and data in RAM (default `layout.RAM_SIZE` at `layout.RAM_BASE`, where the QEMU
harness loads images; `[[memory]]` may name others; frames, one granule each, come from the first region).
The EL1&0 regime has two tables, TTBR0_EL1's (lower VAs) and TTBR1_EL1's (upper VAs): a spec address picks
its table. The last entry of each root table is the harness's and no spec address may use it. `asid` goes
into both TTBRs (EL1&0). Stage 2 alone: the same, case VAs being IPAs. Two stages: host RAM twice the size;
stage 2 maps guest RAM (IPA `RAM_BASE`) to its second half, and the 1 GiB at IPA `OUTSIDE_IPA` (4 GiB) to host
PAs with no RAM.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import numpy as np

from ...arch.aarch64.codec import (
    AF,
    AP,
    AP_TABLE_NO_EL0,
    AP_TABLE_NO_WRITE,
    ATTRINDX,
    DBM,
    MEMATTR,
    NG,
    PXN_TABLE,
    S2AP_W,
    TYPE,
    UXN_TABLE,
    VALID,
    S2Codec,
)
from ...errors import InvalidArgument
from ...flags import MappingFlags as F
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ...translation import MemoryType, Reason
from ..build import FaultRule, FaultSite, Scaffold, SpecArch, Where, set_bits
from ..generation import TableBuilder
from ..schema import U64
from ..spec import Spec
from .gen import GUEST_BACKING, OUTSIDE_RAM, Builder, stage1_builder, stage2_builder, tagged_ram
from .layout import RAM_BASE, RAM_SIZE, tag_memory
from .modes import options_from_json, registers_for, vector_mode

OUTSIDE_IPA = 1 << 32
"""Two stages: the first IPA of the 1 GiB window stage 2 maps to host PAs without RAM."""
_ASID_SHIFT = 48


def scaffold(spec: Spec, reserve: Callable[[FrameAllocator, int], None]) -> Scaffold:
    vm = vector_mode(spec.mode)
    options = {"pa_range": options_from_json(spec.options, vm)}
    if spec.asid and vm.regime != "el1":
        raise InvalidArgument(f"asid: {vm.name} has no ASID (only the EL1&0 regime's TTBRs hold one)")
    rng = random.Random(spec.seed)
    s2: Builder | None = None
    if vm.stage2 and vm.regime is not None:
        if spec.memory is not None:
            raise InvalidArgument(f"memory: the two-stage modes have a fixed layout (host RAM {2 * RAM_SIZE >> 20} MiB "
                                  f"at {RAM_BASE:#x}, guest RAM {RAM_SIZE >> 20} MiB at IPA {RAM_BASE:#x}); "
                                  "leave [[memory]] out")
        host = tagged_ram(2 * RAM_SIZE)
        host_frames = FrameAllocator(host, RAM_BASE, RAM_SIZE, vm.s2_granule.size)
        reserve(host_frames, 2)
        s2 = stage2_builder(vm, rng, host, host_frames)
        s2.pt.map_region(RAM_BASE, GUEST_BACKING, RAM_SIZE, F.READ | F.WRITE | F.EXECUTE, allow_huge=True)
        s2.pt.map_region(OUTSIDE_IPA, OUTSIDE_RAM, 1 << 30, F.READ | F.WRITE | F.EXECUTE, allow_huge=True)
        mem = PhysMem([(RAM_BASE, host.view(GUEST_BACKING, RAM_SIZE))])      # guest RAM at its IPAs
    else:
        host = mem = PhysMem(spec.memory or [(RAM_BASE, RAM_SIZE)])
        tag_memory(mem)
    if vm.regime is None:                                 # stage 2 alone
        frames = FrameAllocator(mem, frame_size=vm.s2_granule.size)
        reserve(frames, 2)
        alone = stage2_builder(vm, rng, mem, frames)
        return Scaffold(mem, [], alone, lambda: registers_for(vm, (), alone.pt.root_paddr), options, OUTSIDE_RAM)
    frames = FrameAllocator(mem, frame_size=vm.granule.size)
    reserve(frames, 1)
    builders = [stage1_builder(fmt, vm, rng, mem, frames, prefix)
                for fmt, prefix in zip(vm.stage1_formats(), ("ttbr0", "ttbr1"), strict=False)]

    def registers() -> dict[str, int]:
        out = registers_for(vm, tuple(b.pt.root_paddr for b in builders), None if s2 is None else s2.pt.root_paddr)
        for name in ("ttbr0_el1", "ttbr1_el1"):
            if name in out:
                out[name] |= spec.asid << _ASID_SHIFT
        return out

    return Scaffold(host, list(builders), s2, registers, options, OUTSIDE_RAM, None if s2 is None else OUTSIDE_IPA)


def _high_bit(s: FaultSite) -> int:
    """An output address bit at or above the output size (TCR IPS/PS, VTCR PS), below the form's width."""
    b = s.b
    assert isinstance(b, Builder)
    if b.oa_bits >= b.form_bits:
        raise InvalidArgument(f"the output size is the form's whole {b.form_bits} bits: no address-size fault here")
    return 1 << s.rng.randrange(b.oa_bits, b.form_bits)


def _reserved_block(s: FaultSite) -> int:
    """Bits 1:0 = 0b01: a page descriptor with TYPE clear at the last level, a block above it."""
    return s.leaf() & ~TYPE if s.last else VALID | AF | s.b.address(s.b.frames.alloc())


def _hierarchical(b: TableBuilder) -> dict[str, FaultRule]:
    """Stage 1's hierarchical attributes (D8.4.2): a table descriptor's APTable, UXNTable and PXNTable over a
    page that would allow the access (the EL2 regime: APTable[1] and XNTable alone)."""
    codec = b.fmt.codec
    if isinstance(codec, S2Codec):
        return {}
    perm = frozenset({Reason.PERMISSION})
    rwx = F.READ | F.WRITE | F.EXECUTE
    user_rw, user_x = F.READ | F.WRITE | F.USER, F.READ | F.EXECUTE | F.USER

    def over(bits: int, flags: F) -> Callable[[FaultSite], int]:
        return lambda s: s.over_page(VALID | TYPE | bits, flags)

    if getattr(codec, "el2", False):
        return {"aptable-read-only": FaultRule("APTable[1]=1 over a writable page (a write faults)", perm,
                                               over(AP_TABLE_NO_WRITE, F.READ | F.WRITE), Where.TABLE, "write"),
                "xntable": FaultRule("XNTable=1 over an executable page (a fetch faults)", perm,
                                     over(UXN_TABLE, F.READ | F.EXECUTE), Where.TABLE, "execute")}
    return {"aptable-no-el0": FaultRule("APTable=0b01 over an EL0 page (an EL0 access faults)", perm,
                                        over(AP_TABLE_NO_EL0, user_rw), Where.TABLE, "read", "user"),
            "aptable-read-only": FaultRule("APTable=0b10 over a writable page (a write faults)", perm,
                                           over(AP_TABLE_NO_WRITE, user_rw), Where.TABLE, "write", "user"),
            "uxntable": FaultRule("UXNTable=1 over an EL0-executable page (an EL0 fetch faults)", perm,
                                  over(UXN_TABLE, user_x), Where.TABLE, "execute", "user"),
            "pxntable": FaultRule("PXNTable=1 over an EL1-executable page (an EL1 fetch faults)", perm,
                                  over(PXN_TABLE, rwx), Where.TABLE, "execute")}


def rules(b: TableBuilder) -> Mapping[str, FaultRule]:
    """The named faults of a stage 1 or stage 2 table."""
    return {**_hierarchical(b),
        "invalid-bits": FaultRule("a descriptor with bit 0 (valid) clear and its other bits set",
                                  frozenset({Reason.INVALID}), lambda s: (s.leaf() if s.last else s.table()) & ~VALID,
                                  Where.ANY),
        "reserved-block": FaultRule("bits 1:0 = 0b01 at the last level, or at a level without blocks (a Translation "
                                    "fault)", frozenset({Reason.INVALID, Reason.RESERVED}),
                                    _reserved_block, Where.NO_BLOCKS),
        "address-size": FaultRule("a descriptor (leaf, or table) whose output address has a bit at or above the output "
                                  "size", frozenset({Reason.ADDRESS_SIZE}),
                                  lambda s: (s.leaf() if s.last or s.fmt.levels[s.depth].leaf else s.table())
                                  | s.b.address(_high_bit(s)), Where.ANY),
        "accessed-clear": FaultRule("a leaf with AF=0 (an Access flag fault without FEAT_HAFDBS updates)",
                                    frozenset({Reason.ACCESSED_DIRTY}), lambda s: s.leaf() & ~AF, Where.LEAF),
    }


def _global_field(b: TableBuilder) -> tuple[int, int]:
    """nG (stage 1 of a two-privilege regime: 0 is global); stage 2 and EL2 descriptors have none."""
    codec = b.fmt.codec
    return (0, 0) if isinstance(codec, S2Codec) or getattr(codec, "el2", False) else (NG, 0)


def _memtype_field(b: TableBuilder, huge: bool) -> tuple[int, tuple[int, ...]]:
    """AttrIndx[2:0] (an index into MAIR_ELx), or stage 2 MemAttr[3:0]."""
    if isinstance(b.fmt.codec, S2Codec):
        return MEMATTR, tuple(k << 2 for k in range(16))
    return ATTRINDX, tuple(k << 2 for k in range(8))


def _accessed_dirty(b: TableBuilder, raw: U64, accessed: bool | None, dirty: bool | None) -> U64:
    """AF (D8.5.1), and the dirty state of writable leaves (D8.5.3, FEAT_HAFDBS): dirty = false makes them
    writable-clean, DBM=1 with AP[2]=1 (stage 2: S2AP[1]=0), so the first write faults, or with TCR_ELx.HD
    (VTCR_EL2.HD) makes the hardware mark them dirty; dirty = true leaves them as encoded (writable)."""
    out = set_bits(raw, AF, accessed)
    if dirty is not False:
        return out
    if isinstance(b.fmt.codec, S2Codec):
        writable = (out & np.uint64(S2AP_W)) != 0
        return np.where(writable, (out & ~np.uint64(S2AP_W)) | np.uint64(DBM), out)
    ap2 = 1 << (AP.bit_length() - 1)                   # AP[2]: read-only
    writable = (out & np.uint64(ap2)) == 0
    return np.where(writable, out | np.uint64(ap2 | DBM), out)


SPEC_ARCH = SpecArch(scaffold, lambda mode: vector_mode(mode).regime is not None, rules, _global_field,
                     _memtype_field, (MemoryType.NORMAL_WB, MemoryType.NORMAL_WT, MemoryType.NORMAL_NC,
                                      MemoryType.DEVICE_NGNRNE, MemoryType.DEVICE_NGNRE, MemoryType.DEVICE_NGRE,
                                      MemoryType.DEVICE_GRE),
                     "through the MAIR_ELx attribute AttrIndx selects: mair_el1 / mair_el2; stage 2: MemAttr",
                     _accessed_dirty)

__all__ = ["OUTSIDE_IPA", "SPEC_ARCH", "rules", "scaffold"]
