"""`mm.AddrSpace` on x86-64 4-level paging, walked by the x86 rules (SDM Vol. 3A 4.5-4.7): the kernel half
(PML4 entries 256-511) shared into a user space, lazy allocation through page faults, copy-on-write clones,
and what the hardware makes of it: user pages translate for CPL 3, kernel pages fault with U/S in the error
code, a COW page faults on a write until the fault is handled."""

from __future__ import annotations

from pagetable.arch.x86_64 import PAGING4, X86Options, X86Rules
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.mm import AddrSpace, Cow
from pagetable.physmem import PhysMem
from pagetable.translation import Reason
from pagetable.walker import Walker

RAM = 0x10_0000
KERNEL = 0xFFFF_8000_0000_0000                  # PML4 entry 256: the kernel half
USER = 0x40_0000


def _walk(space: AddrSpace, va: int, access: str, privilege: str) -> tuple[Reason, int]:
    t = Walker(space.page_table.mem, X86Rules(space.page_table_root, X86Options(smap=True, smep=True))).translate(
        va, access, privilege)
    return t.reason, t.syndrome.get("error_code", -1) if t.syndrome else -1


def test_a_user_space_shares_the_kernel_half_and_faults_in_its_pages() -> None:
    frames = FrameAllocator(PhysMem([(RAM, 16 << 20)]))
    kernel = AddrSpace.new_empty(PAGING4, KERNEL, 1 << 39, frames)            # all of PML4 entry 256
    kernel.map_linear(KERNEL, RAM, 2 << 20, F.READ | F.WRITE)
    user = AddrSpace.new_empty(PAGING4, USER, 1 << 30, frames)
    user.copy_mappings_from(kernel)
    root = user.page_table.mem.read_u64(user.page_table_root + 256 * 8)
    assert root == kernel.page_table.mem.read_u64(kernel.page_table_root + 256 * 8)   # the same PDPT
    user.map(USER, 0x3000, F.READ | F.WRITE | F.USER, False, Cow())            # lazy, copy-on-write
    assert _walk(user, USER, "read", "user") == (Reason.INVALID, 0b100)        # not present yet
    assert user.handle_page_fault(USER, F.WRITE)
    assert _walk(user, USER + 8, "write", "user") == (Reason.OK, -1)
    assert _walk(user, KERNEL + 0x1000, "read", "supervisor") == (Reason.OK, -1)
    assert _walk(user, KERNEL + 0x1000, "read", "user") == (Reason.PERMISSION, 0b101)   # U/S=0: kernel page
    assert _walk(user, USER, "read", "supervisor") == (Reason.PERMISSION, 0b001)        # SMAP
    assert _walk(user, USER, "execute", "supervisor") == (Reason.PERMISSION, 0b1_0001)  # SMEP (and XD)
    user.write(USER, b"parent")
    child = user.try_clone()                                                  # copy-on-write
    assert _walk(child, USER, "read", "user") == (Reason.OK, -1)
    assert _walk(child, USER, "write", "user") == (Reason.PERMISSION, 0b111)  # read-only until the fault
    assert child.handle_page_fault(USER, F.WRITE)
    child.write(USER, b"child!")
    assert (user.read(USER, 6), child.read(USER, 6)) == (b"parent", b"child!")
    for space in (child, user, kernel):
        space.destroy()
    assert frames.in_use == 0
