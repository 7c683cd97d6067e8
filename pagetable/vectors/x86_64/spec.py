"""x86-64's part of `pagetable vectors build` (docs/vectors-spec.md): the scaffold of every vector mode and
the deliberate faults of Intel SDM Vol. 3A 4.7 (#PF causes: not present, RSVD) and Vol. 3C 29.3.3 (EPT
misconfigurations).

One stage: the tables and data in RAM (default `layout.RAM_SIZE` at `layout.RAM_BASE`, the QEMU harness's;
`[[memory]]` may name others; frames come from the first region); PML4 index 255 (and PML5 index 255) is
the harness's and no spec address may use it. The registers are those of `vectors generate` (CR0.WP, CR4
SMEP/SMAP/PKE/PGE, EFER.NXE, Linux's IA32_PAT, PKRU 0), which `[registers]` may override (e.g. `pkru`, `efer`):
the tables are then written for the overrides (no XD with EFER.NXE=0; memory types through the given PAT).
The nested stage alone: the same, case VAs being guest-physical. Two stages: host RAM twice the size; the
nested tables map guest RAM (GPA `RAM_BASE`) to its second half, and the 1 GiB at GPA `OUTSIDE_GPA` (4 GiB)
to host PAs with no RAM.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

from ...arch.x86_64 import CR0, EFER, EPT4, PAGING_PAE, PTE_4K, RFLAGS
from ...arch.x86_64.entry import PAT_4K, PAT_HUGE, PCD, PS, PWT, RW, US, XD, A, D, G, P, pat_index_bits
from ...arch.x86_64.ept import IPAT, MT_SHIFT, R, W, X
from ...arch.x86_64.ept import A as EPT_A
from ...arch.x86_64.ept import D as EPT_D
from ...errors import InvalidArgument
from ...flags import MappingFlags as F
from ...frames import FrameAllocator
from ...physmem import PhysMem
from ...translation import MemoryType, Reason
from ..build import FaultRule, FaultSite, Scaffold, SpecArch, Where, set_bits
from ..generation import TableBuilder
from ..schema import U64
from ..spec import Spec
from . import nested
from .gen import GUEST_BACKING, OUTSIDE_RAM, PAT_VALUE, TABLE, Builder, RegisterChoices, registers_for, tagged_ram
from .gen32 import NO_RAM
from .layout import RAM_BASE, RAM_SIZE, tag_memory
from .modes import CpuOptions, vector_mode

OUTSIDE_GPA = 1 << 32
"""Two stages: the first GPA of the 1 GiB window the nested tables map to host PAs without RAM."""
_MT = 7 << MT_SHIFT
_RESERVED, _INVALID = frozenset({Reason.RESERVED}), frozenset({Reason.INVALID})
_PERMISSION = frozenset({Reason.PERMISSION})
_RWX = F.READ | F.WRITE | F.EXECUTE
_USER_RWX = _RWX | F.USER


def scaffold(spec: Spec, reserve: Callable[[FrameAllocator, int], None]) -> Scaffold:
    vm = vector_mode(spec.mode)
    cpu = CpuOptions.from_json(spec.options, vm)
    if spec.asid:
        raise InvalidArgument("asid: x86-64 tags TLB entries with a PCID only with CR4.PCIDE=1; give cr3 and cr4 in "
                              "[registers] instead")
    rng = random.Random(spec.seed)
    regs = spec.registers
    choice = RegisterChoices(ac=bool(RFLAGS.get(regs.get("rflags", RFLAGS.build(FIXED1=1)), "AC")),
                             nxe=bool(EFER.get(regs.get("efer", EFER.mask("NXE")), "NXE")),
                             wp=bool(CR0.get(regs.get("cr0", CR0.mask("WP")), "WP")))
    pat, host_pat = regs.get("pat", PAT_VALUE), regs.get("host_pat", PAT_VALUE)   # the codecs' memory types

    def stage2_builder(mem: PhysMem, frames: FrameAllocator) -> TableBuilder:
        assert vm.stage2 is not None
        return nested.EptBuilder(rng, cpu, mem, frames) if vm.ept else Builder(vm.stage2, rng, cpu, mem, frames,
                                                                                    host_pat)

    if vm.stage2 is None or vm.stage1 is None:
        mem = PhysMem(spec.memory or [(RAM_BASE, RAM_SIZE)])
        tag_memory(mem)
        frames = FrameAllocator(mem)
        reserve(frames, 1 if vm.stage1 else 2)
        if vm.stage1 is not None:
            b: TableBuilder = Builder(vm.stage1, rng, cpu, mem, frames, pat, choice.nxe)
            return Scaffold(mem, [b], None, lambda: registers_for(vm, b.pt.root_paddr, 0, choice),
                            cpu.to_json(vm), OUTSIDE_RAM if vm.paging == "ia32e" else NO_RAM)
        n = stage2_builder(mem, frames)
        return Scaffold(mem, [], n, lambda: nested.registers(vm, n.pt.root_paddr, rng), cpu.to_json(vm), OUTSIDE_RAM)
    if spec.memory is not None:
        raise InvalidArgument(f"memory: the two-stage modes have a fixed layout (host RAM {2 * RAM_SIZE >> 20} MiB at "
                              f"{RAM_BASE:#x}, guest RAM {RAM_SIZE >> 20} MiB at GPA {RAM_BASE:#x}); "
                              "leave [[memory]] out")
    host = tagged_ram(2 * RAM_SIZE)
    host_frames = FrameAllocator(host, RAM_BASE, RAM_SIZE)
    reserve(host_frames, 2)
    n2 = stage2_builder(host, host_frames)
    n2.pt.map_region(RAM_BASE, GUEST_BACKING, RAM_SIZE, F.READ | F.WRITE | F.EXECUTE, allow_huge=True)
    n2.pt.map_region(OUTSIDE_GPA, OUTSIDE_RAM, 1 << 30, F.READ | F.WRITE | F.EXECUTE, allow_huge=True)
    guest = PhysMem([(RAM_BASE, host.view(GUEST_BACKING, RAM_SIZE))])     # the same bytes, at their GPAs
    guest_frames = FrameAllocator(guest)
    reserve(guest_frames, 1)
    g = Builder(vm.stage1, rng, cpu, guest, guest_frames, pat, choice.nxe)
    return Scaffold(host, [g], n2, lambda: registers_for(vm, g.pt.root_paddr, 0, choice)
                    | nested.registers(vm, n2.pt.root_paddr, rng), cpu.to_json(vm), OUTSIDE_RAM, OUTSIDE_GPA)


def _wide_bit(s: FaultSite) -> int:
    """An address bit at or above MAXPHYADDR (below bit 52): reserved in every entry."""
    return 1 << s.rng.randrange(s.b.cpu.maxphyaddr, 52)    # type: ignore[attr-defined]


def _entry(s: FaultSite, flags: F = F.READ | F.WRITE) -> int:
    """A leaf at the last level, a table entry above."""
    return s.leaf(flags) if s.last else s.table()


def _paging_rules() -> dict[str, FaultRule]:
    """4- and 5-level paging's (and AMD nested paging's) named faults (SDM Vol. 3A 4.7)."""
    return {
        "not-present-bits": FaultRule("an entry with P=0 and its other bits set", _INVALID,
                                      lambda s: _entry(s) & ~P, Where.ANY),
        "reserved-bit": FaultRule("an entry with an address bit at or above MAXPHYADDR (RSVD)", _RESERVED,
                                  lambda s: _entry(s) | _wide_bit(s), Where.ANY),
        "reserved-ps": FaultRule("a PML4E or PML5E with PS=1 (RSVD)", _RESERVED, lambda s: s.table() | PS,
                                 Where.TABLE, levels=(4, 5)),
        "reserved-huge-bits": FaultRule("a 2 MiB or 1 GiB page with a bit of its address field below its alignment "
                                        "set (bits 20:13, 29:13; RSVD)", _RESERVED,
                                        lambda s: s.leaf() | 1 << s.rng.randrange(13, s.span.bit_length() - 1),
                                        Where.SUPERPAGE),
        "xd-without-nxe": FaultRule("a leaf with XD=1 while EFER.NXE=0 (RSVD; give efer in [registers])", _RESERVED,
                                    lambda s: s.leaf() | XD, Where.LEAF),
        "table-supervisor": FaultRule("a table entry with U/S=0 over a user page (a user access faults)", _PERMISSION,
                                      lambda s: s.over_page(TABLE & ~US, _USER_RWX), Where.TABLE, "read", "user"),
        "table-read-only": FaultRule("a table entry with R/W=0 over a writable page (a write faults, CR0.WP=1)",
                                     _PERMISSION, lambda s: s.over_page(TABLE & ~RW, _USER_RWX), Where.TABLE,
                                     "write", "user"),
        "table-xd": FaultRule("a table entry with XD=1 over an executable page (a fetch faults)", _PERMISSION,
                              lambda s: s.over_page(TABLE | XD, _USER_RWX), Where.TABLE, "execute", "user"),
        "protection-key": FaultRule("a user leaf with protection key 1 (give pkru with AD1 or WD1 in [registers])",
                                    frozenset({Reason.PROTECTION_KEY}),
                                    lambda s: s.leaf(F.READ | F.WRITE | F.USER) | PTE_4K.set(0, "PK", 1), Where.LEAF,
                                    "write", "user"),
    }


def _ept_rules() -> dict[str, FaultRule]:
    """EPT's named faults (SDM Vol. 3C 29.3.3: misconfigurations and not-present entries)."""
    return {
        "not-present-bits": FaultRule("an entry with R=W=X=0 and other bits set", _INVALID,
                                      lambda s: _entry(s) & ~(R | W | X), Where.ANY),
        "misconfig-w-without-r": FaultRule("an entry with W=1 and R=0 (an EPT misconfiguration)",
                                           frozenset({Reason.W_WITHOUT_R}), lambda s: (_entry(s) & ~R) | W, Where.ANY),
        "misconfig-memtype": FaultRule("a leaf with memory type 2, 3 or 7 (an EPT misconfiguration)", _RESERVED,
                                       lambda s: (s.leaf() & ~_MT) | s.rng.choice((2, 3, 7)) << MT_SHIFT, Where.LEAF),
        "reserved-bit": FaultRule("an entry with an address bit at or above MAXPHYADDR (a misconfiguration)",
                                  _RESERVED, lambda s: _entry(s) | _wide_bit(s), Where.ANY),
        "reserved-ps": FaultRule("a PML4E with bit 7 set (a misconfiguration)", _RESERVED, lambda s: s.table() | PS,
                                 Where.TABLE, levels=(4, 5)),
        "table-no-write": FaultRule("a table entry with W=0 over a read/write/execute page (a write is a violation)",
                                    _PERMISSION, lambda s: s.over_page(R | X, _RWX), Where.TABLE, "write"),
        "table-no-execute": FaultRule("a table entry with X=0 over a read/write/execute page (a fetch is a "
                                      "violation)", _PERMISSION, lambda s: s.over_page(R | W, _RWX), Where.TABLE,
                                      "execute"),
    }


def _lowest_reserved_4m_bit(s: FaultSite) -> int:
    """The lowest reserved bit of a 4 MiB page's PDE (Table 4-4): 13 without PSE-36 (a format of 32-bit
    PAs), else 13 + M - 32 with M = min(MAXPHYADDR, 40) (bit 21 alone with M = 40)."""
    return 13 if s.b.fmt.pa_bits == 32 else 13 + min(s.b.cpu.maxphyaddr, 40) - 32    # type: ignore[attr-defined]


def _paging32_rules() -> dict[str, FaultRule]:
    """32-bit paging's named faults (SDM Vol. 3A 4.3, 4.7): no XD, no address bits above bit 31 but a 4 MiB
    page's, no protection keys; the PDE's rights narrow its table's pages."""
    paging = _paging_rules()                # every leaf executable: there is no XD bit to clear
    return {
        "not-present-bits": dataclasses.replace(paging["not-present-bits"], entry=lambda s: _entry(s, _RWX) & ~P),
        "leaf-outside-ram": FaultRule("a leaf whose output address has no RAM", frozenset({Reason.PA_OUTSIDE_MEMORY}),
                                      lambda s: s.leaf(_RWX, s.outside_pa()), Where.LEAF),
        "reserved-huge-bits": FaultRule("a 4 MiB page with a reserved PDE bit set (bit 21; bits 20:13 without "
                                        "PSE-36, those of PA bits at or above min(MAXPHYADDR, 40) with it; RSVD)",
                                        _RESERVED, lambda s: s.leaf(_RWX) | 1 << s.rng.randrange(
                                            _lowest_reserved_4m_bit(s), 22), Where.SUPERPAGE),
        "table-supervisor": paging["table-supervisor"],
        "table-read-only": paging["table-read-only"],
    }


def _pae_rules() -> dict[str, FaultRule]:
    """PAE paging's named faults (SDM Vol. 3A 4.4, 4.7): 4-level paging's at the PDEs and PTEs, and bits 62:52
    reserved; none in a PDPTE (level 3: a present one with a reserved bit #GPs at the MOV to CR3, and it has
    no rights; of its four entries one is the harness's, so a spec's level-3 faults are the generic `invalid`
    and `table-outside-ram`), no protection keys, no PS in a PDPTE."""
    paging = _paging_rules()
    low = (1, 2)
    return {
        "not-present-bits": dataclasses.replace(paging["not-present-bits"], levels=low),
        "reserved-bit": dataclasses.replace(paging["reserved-bit"], levels=low),
        "reserved-high-bits": FaultRule("a PDE or PTE with one of bits 62:52 set (RSVD in PAE paging)", _RESERVED,
                                        lambda s: _entry(s) | 1 << s.rng.randrange(52, 63), Where.ANY, levels=low),
        "reserved-huge-bits": paging["reserved-huge-bits"],
        "xd-without-nxe": paging["xd-without-nxe"],
        **{k: dataclasses.replace(paging[k], levels=(2,)) for k in ("table-supervisor", "table-read-only",
                                                                     "table-xd")},
    }


PAGING_RULES, EPT_RULES = _paging_rules(), _ept_rules()
PAGING32_RULES, PAE_RULES = _paging32_rules(), _pae_rules()


def rules(b: TableBuilder) -> Mapping[str, FaultRule]:
    if isinstance(b, nested.EptBuilder):
        return EPT_RULES
    if b.fmt.entry_size == 4:
        return PAGING32_RULES
    return PAE_RULES if b.fmt.name == PAGING_PAE.name else PAGING_RULES


def _global_field(b: TableBuilder) -> tuple[int, int]:
    return (0, 0) if b.fmt.name == EPT4.name else (G, G)


def _memtype_field(b: TableBuilder, huge: bool) -> tuple[int, tuple[int, ...]]:
    """The PAT index bits (PWT, PCD, PAT) of a page, or EPT's memory type and IPAT."""
    if isinstance(b, nested.EptBuilder):
        return _MT | IPAT, tuple(k << MT_SHIFT | ipat for ipat in (0, IPAT) for k in (0, 1, 4, 5, 6))
    return PWT | PCD | (PAT_HUGE if huge else PAT_4K), tuple(pat_index_bits(k, huge) for k in range(8))


def _accessed_dirty(b: TableBuilder, raw: U64, accessed: bool | None, dirty: bool | None) -> U64:
    """A and D of paging-structure leaves (SDM Vol. 3A 4.8), or of EPT leaves (bits 8 and 9, with EPTP's A/D
    enable: Vol. 3C 29.3.5)."""
    a, d = (EPT_A, EPT_D) if isinstance(b, nested.EptBuilder) else (A, D)
    return set_bits(set_bits(raw, a, accessed), d, dirty)


SPEC_ARCH = SpecArch(scaffold, lambda mode: vector_mode(mode).stage1 is not None, rules, _global_field,
                     _memtype_field, (MemoryType.WB, MemoryType.WT, MemoryType.WC, MemoryType.WP, MemoryType.UC,
                                      MemoryType.UC_MINUS),
                     "through the IA32_PAT entry PWT/PCD/PAT select: the pat register; EPT: its memory type",
                     _accessed_dirty)

__all__ = ["OUTSIDE_GPA", "SPEC_ARCH", "rules", "scaffold"]
