"""`mm` and `uptr` over x86 32-bit paging with CR4.PSE (Intel SDM Vol. 3A 4.3) and PAE paging (4.4): a 32-bit
kernel's 3G/1G layout -- the kernel's linear map at 0xC000_0000 in 4 MiB (32-bit) or 2 MiB (PAE) pages, shared
into each user space's root -- with lazy allocation through page faults, copy-on-write clones and user
pointers, every step walked by the x86 rules from CR3 (with PAE, the PDPTE registers loaded from the PDPT at
each CR3 load: after a fault handler fills a PDPTE the kernel reloads CR3, SDM 4.4.1), #PF error codes
included."""

from __future__ import annotations

import pytest

from pagetable.arch.x86_64 import PAGING32_PSE, PAGING_PAE, X86Options, X86Rules, load_pdptes
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.mm import AddrSpace, Cow
from pagetable.physmem import PhysMem
from pagetable.translation import Reason
from pagetable.walker import Walker

from .userptrs import check_user_pointers

RAM, PAGE_OFFSET, USER = 0x10_0000, 0xC000_0000, 0x0040_0000      # Linux's i386 PAGE_OFFSET (3G/1G)
PRESENT, WRITE, USER_MODE, FETCH = 1, 2, 4, 0x10                    # #PF error code bits (SDM 4.7)
MODES = {"32-bit": (PAGING32_PSE, 4 << 20), "pae": (PAGING_PAE, 2 << 20)}
DATA = {"32-bit": F.READ | F.WRITE | F.EXECUTE, "pae": F.READ | F.WRITE}
"""A data page's flags: 32-bit paging has no XD (every present page is executable, SDM 4.6), so mapping one
means asking for EXECUTE too; PAE with EFER.NXE keeps data pages XD."""


def _spaces(paging: str) -> tuple[AddrSpace, AddrSpace]:
    fmt, _ = MODES[paging]
    frames = FrameAllocator(PhysMem([(0, 32 << 20)]), RAM, 31 << 20)
    kernel = AddrSpace.new_empty(fmt, PAGE_OFFSET, 1 << 30, frames)
    kernel.map_linear(PAGE_OFFSET, 0, 16 << 20, DATA[paging])
    user = AddrSpace.new_empty(fmt, 0x1000, PAGE_OFFSET - 0x1000, frames)
    user.copy_mappings_from(kernel)
    return kernel, user


def _cpu(space: AddrSpace) -> Walker:
    """The CPU after a MOV to CR3 of the space's root: CR0.WP=1, CR4.PSE, SMEP and SMAP; with PAE, EFER.NXE
    and the PDPTE registers loaded from the PDPT."""
    pt, root = space.page_table, space.page_table_root
    if pt.fmt is PAGING_PAE:
        return Walker(pt.mem, X86Rules(root, X86Options(paging="pae", nxe=True, smep=True, smap=True, maxphyaddr=36),
                                       pdptes=load_pdptes(pt.mem, root)))
    return Walker(pt.mem, X86Rules(root, X86Options(paging="32-bit", pse=True, smep=True, smap=True)))


def _walk(space: AddrSpace, va: int, access: str, privilege: str = "user") -> tuple[Reason, int, int]:
    """The reason, the #PF error code (-1: none) and the PA (CR2 on a fault)."""
    t = _cpu(space).translate(va, access, privilege)
    return t.reason, t.syndrome.get("error_code", -1), t.syndrome["cr2"] if t.pa is None else t.pa


@pytest.mark.parametrize("paging", MODES)
def test_kernel_linear_map_in_large_pages_shared_into_the_user_root(paging: str) -> None:
    fmt, large = MODES[paging]
    kernel, user = _spaces(paging)
    assert kernel.page_table.query(PAGE_OFFSET + 0x40_1234) == (0x40_1234, DATA[paging], large)
    assert _walk(user, PAGE_OFFSET + 0x123, "write", "supervisor")[::2] == (Reason.OK, 0x123)
    assert _walk(user, PAGE_OFFSET + 0x123, "read") == (Reason.PERMISSION, PRESENT | USER_MODE, PAGE_OFFSET + 0x123)
    index = PAGE_OFFSET >> fmt.levels[0].index_lsb                  # PDE 768 (32-bit), PDPTE 3 (PAE)
    e, size = user.page_table.entries, fmt.entry_size
    root = e.read(user.page_table_root + size * index)
    assert root == e.read(kernel.page_table_root + size * index) != 0
    for space in (user, kernel):
        space.destroy()
    assert user.frames.in_use == 0


@pytest.mark.parametrize("paging", MODES)
def test_lazy_pages_copy_on_write_and_fault_handling(paging: str) -> None:
    kernel, user = _spaces(paging)
    user.map(USER, 0x3000, DATA[paging] | F.USER, False, Cow())
    assert _walk(user, USER + 8, "read") == (Reason.INVALID, USER_MODE, USER + 8)
    assert user.handle_page_fault(USER + 8, F.WRITE)
    assert _walk(user, USER + 8, "write")[0] == Reason.OK
    assert _walk(user, USER, "read", "supervisor") == (Reason.PERMISSION, PRESENT, USER)                 # SMAP
    assert _walk(user, USER, "execute", "supervisor") == (Reason.PERMISSION, PRESENT | FETCH, USER)      # SMEP
    user.write(USER, b"parent")
    child = user.try_clone()
    assert _walk(child, USER, "write") == (Reason.PERMISSION, PRESENT | WRITE | USER_MODE, USER)
    assert _walk(user, USER, "write")[0] == Reason.PERMISSION       # the parent lost R/W too
    assert child.handle_page_fault(USER, F.WRITE)
    child.write(USER, b"child!")
    assert (user.read(USER, 6), child.read(USER, 6)) == (b"parent", b"child!")
    assert _walk(user, USER, "read")[2] != _walk(child, USER, "read")[2]
    assert user.handle_page_fault(USER, F.WRITE)                    # the sole owner: R/W back in place
    assert _walk(user, USER, "write")[0] == Reason.OK
    assert not user.handle_page_fault(USER + 0x3000, F.READ)        # no area there
    rights = "rwxp" if paging == "32-bit" else "rw-p"
    assert user.maps() == f"00400000-00403000 {rights} 00000000 00:00 0 [cow]"      # 32-bit VAs: 8 digits
    for space in (child, user, kernel):
        space.destroy()
    assert user.frames.in_use == 0


def test_pae_user_pages_are_execute_disable_where_not_executable() -> None:
    """With EFER.NXE a user RW page gets XD: a user fetch there faults with I/D (SDM 4.6); a user RX one runs."""
    kernel, user = _spaces("pae")
    user.map_alloc(USER, 0x1000, F.READ | F.WRITE | F.USER, True)
    user.map_alloc(USER + 0x1000, 0x1000, F.READ | F.EXECUTE | F.USER, True)
    assert _walk(user, USER, "execute") == (Reason.PERMISSION, PRESENT | USER_MODE | FETCH, USER)
    assert _walk(user, USER + 0x1000, "execute")[0] == Reason.OK
    for space in (user, kernel):
        space.destroy()


@pytest.mark.parametrize("paging", MODES)
def test_user_pointers(paging: str) -> None:
    kernel, user = _spaces(paging)
    check_user_pointers(kernel, user, USER, PAGE_OFFSET, lambda: _cpu(user), DATA[paging])
