"""`mm` on AArch64: the kernel's `AddrSpace` over a TTBR1 format (the upper range), users' over TTBR0 formats,
walked by the EL1&0 rules from TCR_EL1/TTBR0_EL1/TTBR1_EL1; lazy allocation through page faults,
copy-on-write clones, user pointers (`uptr`); and a `GuestAddrSpace` over stage 2, under a guest's stage 1
table, walked by a two-stage Walker from TCR_EL1 and VTCR_EL2/VTTBR_EL2.

Arm ARM DDI 0487 M.a.a: D8.1 (the EL1&0 regime's two ranges, VA bit 55), D8.4 (AP[2:1], PXN/UXN, PAN),
D24.2.47 (ESR_ELx: EC 0x24/0x25, DFSC)."""

from __future__ import annotations

import errno

import pytest

from pagetable.arch.aarch64 import Granule
from pagetable.arch.aarch64.config import tcr_el1, vtcr_el2
from pagetable.arch.aarch64.modes import (
    S1_4K_39,
    S1_4K_48,
    S1_16K_47,
    S1_64K_48,
    S2_4K_40,
    stage1_format,
    stage2_format,
)
from pagetable.arch.aarch64.regimes import el1_rules, stage2_rules
from pagetable.arch.aarch64.walk import FSC_PERMISSION, FSC_TRANSLATION
from pagetable.flags import MappingFlags as F
from pagetable.format import PagingFormat
from pagetable.frames import FrameAllocator
from pagetable.mm import AddrSpace, Cow, GuestAddrSpace
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.translation import Reason
from pagetable.walker import Walker

from .userptrs import check_user_pointers

RAM = 0x4000_0000                         # QEMU virt's RAM base on arm64
USER = 0x40_0000
EC_DABT_LOWER, EC_DABT_SAME, EC_IABT_SAME = 0x24, 0x25, 0x21
SPACES = {                                # (TTBR0 user format, TTBR1 kernel format)
    "4k48": (S1_4K_48, stage1_format(Granule.K4, 48, upper=True)),
    "4k39-4k48": (S1_4K_39, stage1_format(Granule.K4, 48, upper=True)),
    "16k47": (S1_16K_47, stage1_format(Granule.K16, 47, upper=True)),
    "64k48": (S1_64K_48, stage1_format(Granule.K64, 48, upper=True)),
}


def kernel_base(fmt: PagingFormat) -> int:
    return (1 << 64) - (1 << fmt.va_bits)


def spaces(name: str) -> tuple[AddrSpace, AddrSpace]:
    """A kernel space (the whole TTBR1 range, the first 4 MiB of RAM mapped linearly) and a user one (TTBR0)
    in the same RAM, in frames of the granule."""
    lower, upper = SPACES[name]
    frames = FrameAllocator(PhysMem([(RAM, 64 << 20)]), frame_size=lower.page_size)
    kernel = AddrSpace.new_empty(upper, kernel_base(upper), 1 << upper.va_bits, frames)
    kernel.map_linear(kernel_base(upper), RAM, 4 << 20, F.READ | F.WRITE)
    user = AddrSpace.new_empty(lower, USER, 1 << 30, frames)
    return kernel, user


def cpu(kernel: AddrSpace, user: AddrSpace, *, pan: bool = False) -> Walker:
    """The EL1&0 regime with TTBR0_EL1 = the user's table and TTBR1_EL1 = the kernel's."""
    tcr = tcr_el1(user.fmt, kernel.fmt)
    return Walker(user.page_table.mem, el1_rules(tcr, user.page_table_root, kernel.page_table_root, pan=pan))


def walk(w: Walker, va: int, access: str, privilege: str) -> tuple[Reason, int]:
    """The outcome and ESR_EL1's EC and DFSC (-1 when it translates)."""
    t = w.translate(va, access, privilege)
    return t.reason, (-1 if t.ok else (t.syndrome["esr"] >> 26) << 8 | t.syndrome["esr"] & 0x3F)


@pytest.mark.parametrize("name", list(SPACES))
def test_kernel_in_ttbr1_users_in_ttbr0_fault_in_and_clone(name: str) -> None:
    kernel, user = spaces(name)
    page, kva = user.fmt.page_size, kernel_base(kernel.fmt)
    user.map(USER, 3 * page, F.READ | F.WRITE | F.USER, False, Cow())           # lazy, copy-on-write
    w = cpu(kernel, user)
    start = user.fmt.levels[0].arch_level                                     # no table yet: the root's fault
    assert walk(w, USER, "read", "user") == (Reason.INVALID, EC_DABT_LOWER << 8 | FSC_TRANSLATION | start)
    assert user.handle_page_fault(USER, F.WRITE)
    assert walk(w, USER + 8, "write", "user") == (Reason.OK, -1)
    assert walk(w, kva + 0x1000, "read", "supervisor") == (Reason.OK, -1)
    assert w.translate(kva + 0x1238).pa == RAM + 0x1238
    assert walk(w, kva + 0x1000, "read", "user") == (Reason.PERMISSION, EC_DABT_LOWER << 8 | FSC_PERMISSION | 3
                                                      - (kernel.page_table.query(kva)[2] != page))
    assert walk(w, USER, "execute", "supervisor") == (Reason.PERMISSION, EC_IABT_SAME << 8 | FSC_PERMISSION | 3)
    assert walk(cpu(kernel, user, pan=True), USER, "read", "supervisor") == \
        (Reason.PERMISSION, EC_DABT_SAME << 8 | FSC_PERMISSION | 3)                   # PAN
    user.write(USER, b"parent")
    child = user.try_clone()
    wc = cpu(kernel, child)                                                   # the child's TTBR0_EL1
    assert walk(wc, USER, "read", "user") == (Reason.OK, -1)
    assert walk(wc, USER, "write", "user") == (Reason.PERMISSION, EC_DABT_LOWER << 8 | FSC_PERMISSION | 3)
    assert walk(w, USER, "write", "user")[0] == Reason.PERMISSION               # the parent lost WRITE too
    assert child.handle_page_fault(USER, F.WRITE)
    assert walk(wc, USER, "write", "user") == (Reason.OK, -1)
    child.write(USER, b"child!")
    assert (user.read(USER, 6), child.read(USER, 6)) == (b"parent", b"child!")
    assert w.translate(USER, "read", "user").pa != wc.translate(USER, "read", "user").pa
    assert user.handle_page_fault(USER, F.WRITE)                               # sole owner now: WRITE back
    assert walk(w, USER, "write", "user") == (Reason.OK, -1)
    assert not user.handle_page_fault(USER + 3 * page, F.READ)                 # no area
    for space in (child, user, kernel):
        space.destroy()
    assert user.frames.in_use == 0


def test_a_kernel_space_needs_an_upper_base() -> None:
    upper = SPACES["4k48"][1]
    frames = FrameAllocator(PhysMem([(RAM, 1 << 20)]))
    with pytest.raises(OSError) as exc:                           # InvalidParam: TTBR1 holds no low VAs
        AddrSpace.new_empty(upper, 0x1000, 0x1000, frames)
    assert exc.value.errno == errno.EINVAL
    k = AddrSpace.new_empty(upper, (1 << 64) - (1 << 30), 1 << 30, frames)   # the last GiB
    k.map_alloc((1 << 64) - 0x2000, 0x2000, F.READ | F.WRITE, True)
    k.write((1 << 64) - 8, b"top word")
    assert k.read((1 << 64) - 8, 8) == b"top word"
    k.destroy()
    assert frames.in_use == 0


@pytest.mark.parametrize("name", ["4k48", "64k48"])
def test_user_pointers_on_an_aarch64_user_space(name: str) -> None:
    kernel, user = spaces(name)
    check_user_pointers(kernel, user, USER, kernel_base(kernel.fmt), lambda: cpu(kernel, user))


# ------------------------------------------------------------------------- stage 2
GUEST_RAM, GUEST_SIZE = 0x4000_0000, 8 << 20     # guest RAM's IPA range
HOST = 0x8_0000_0000                             # host RAM: frames, then the guest's RAM
LAZY = GUEST_RAM + GUEST_SIZE                    # a lazily allocated guest region after its RAM


@pytest.mark.parametrize("fmt", [S2_4K_40, stage2_format(Granule.K64, 42, 2)], ids=["s2-4k40", "s2-64k42"])
def test_a_guest_space_over_stage_2_and_the_two_stage_walk(fmt: PagingFormat) -> None:
    """The guest's stage 1 table (4KB granule, 48-bit VA, built in its IPA space: a view of the host bytes
    stage 2 maps its RAM to) over the GuestAddrSpace's stage 2 table: the two-stage walk reaches the PAs the
    guest space translates to, a lazy area is a stage 2 fault (HPFAR_EL2 names the IPA) until the fault is
    handled, and a write-protected IPA is a stage 2 Permission fault."""
    page = fmt.page_size
    host = PhysMem([(HOST, 32 << 20)])
    backing = HOST + (16 << 20)
    g = GuestAddrSpace.new_empty(fmt, GUEST_RAM, 16 << 20, FrameAllocator(host, HOST, 16 << 20, frame_size=page))
    g.map_linear(GUEST_RAM, backing, GUEST_SIZE, F.READ | F.WRITE | F.EXECUTE)
    g.map_alloc(LAZY, page, F.READ | F.WRITE, False)
    guest = PhysMem([(GUEST_RAM, host.view(backing, GUEST_SIZE))])
    s1 = PageTable(S1_4K_48, guest, FrameAllocator(guest))
    data = s1.frames.alloc()
    s1.map(0x1000, data, 0x1000, F.READ | F.WRITE)
    s1.map(0x2000, LAZY + 0x1000 % page, 0x1000, F.READ | F.WRITE)
    tcr = tcr_el1(S1_4K_48)
    w = Walker.nested(host, (el1_rules(tcr, s1.root_paddr, 0), stage2_rules(vtcr_el2(fmt), g.page_table_root)))
    t = w.translate(0x1234, "write")
    assert (t.reason, t.gpa, t.pa) == (Reason.OK, data + 0x234, g.translate(data + 0x234))
    assert t.pa == backing + data - GUEST_RAM + 0x234
    t = w.translate(0x2010, "read")                                      # stage 2 hole: lazy
    assert (t.reason, t.stage, t.gpa, t.implicit) == (Reason.INVALID, 2, LAZY + 0x1000 % page + 0x10, False)
    assert t.syndrome["hpfar"] == (LAZY + 0x1000 % page) >> 12 << 4
    assert g.handle_page_fault(t.gpa or 0, F.READ)
    t = w.translate(0x2010, "write")
    assert t.ok and t.pa == g.translate(LAZY + 0x1000 % page + 0x10)
    g.write_buffer(LAZY + 0x1000 % page + 0x10, b"guest")
    assert t.pa is not None and host.read(t.pa, 5) == b"guest"
    g.protect(LAZY, page, F.READ)
    t = w.translate(0x2010, "write")
    assert (t.reason, t.stage, t.syndrome["esr"] & 0x3F) == (Reason.PERMISSION, 2, FSC_PERMISSION | 3)
    leaf_table = s1.lookup(0x1000).table                                 # a stage 1 table page, read-only
    g.protect(leaf_table & ~(page - 1), page, F.WRITE)                   # ... now write-only at stage 2
    t = w.translate(0x1000, "read")
    assert (t.reason, t.stage, t.implicit) == (Reason.PERMISSION, 2, True)    # S1PTW
    assert t.syndrome["esr"] >> 7 & 1
    g.destroy()
    assert g.frames.in_use == 0
