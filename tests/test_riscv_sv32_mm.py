"""`mm` and `uptr` over RISC-V Sv32 (privileged spec, "Sv32"; scause values from "Supervisor Cause Register"):
an RV32 kernel's layout -- one satp for both halves, the kernel's linear map at 0xC000_0000 in 4 MiB
megapages, shared into each user space's root -- with lazy allocation through page faults, copy-on-write
clones and user pointers, every step checked by the walker from the RV32 satp the space's root gives."""

from __future__ import annotations

from pagetable.arch.riscv_sv39 import SV32, Satp32
from pagetable.arch.riscv_sv39.walk import RiscvRules
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.mm import AddrSpace, Cow
from pagetable.physmem import PhysMem
from pagetable.translation import Reason
from pagetable.walker import Walker

from .userptrs import check_user_pointers

RAM, PAGE_OFFSET, USER = 0x8000_0000, 0xC000_0000, 0x0040_0000       # virt's RAM; Linux's RV32 PAGE_OFFSET
LOAD_PAGE_FAULT, STORE_PAGE_FAULT = 13, 15
URW = F.READ | F.WRITE | F.USER


def _spaces() -> tuple[AddrSpace, AddrSpace]:
    frames = FrameAllocator(PhysMem([(RAM, 32 << 20)]))
    kernel = AddrSpace.new_empty(SV32, PAGE_OFFSET, 1 << 30, frames)
    kernel.map_linear(PAGE_OFFSET, RAM, 8 << 20, F.READ | F.WRITE)
    user = AddrSpace.new_empty(SV32, 0x1000, PAGE_OFFSET - 0x1000, frames)
    user.copy_mappings_from(kernel)
    return kernel, user


def _cpu(space: AddrSpace) -> Walker:
    return Walker(space.page_table.mem, RiscvRules(Satp32.for_table(SV32, space.page_table_root)))


def _walk(w: Walker, va: int, access: str, privilege: str = "user") -> tuple[Reason, int, int]:
    t = w.translate(va, access, privilege)
    return t.reason, t.syndrome.get("scause", -1), t.syndrome["stval"] if t.pa is None else t.pa


def test_kernel_linear_map_in_megapages_shared_into_the_user_root() -> None:
    kernel, user = _spaces()
    assert kernel.page_table.query(PAGE_OFFSET + 0x40_1234) == (RAM + 0x40_1234, F.READ | F.WRITE, 4 << 20)
    w = _cpu(user)
    assert _walk(w, PAGE_OFFSET + 0x123, "write", "supervisor")[::2] == (Reason.OK, RAM + 0x123)
    assert _walk(w, PAGE_OFFSET + 0x123, "read") == (Reason.PERMISSION, LOAD_PAGE_FAULT, PAGE_OFFSET + 0x123)
    root = user.page_table.entries.read(user.page_table_root + 4 * (PAGE_OFFSET >> 22))
    assert root == kernel.page_table.entries.read(kernel.page_table_root + 4 * (PAGE_OFFSET >> 22)) != 0


def test_lazy_pages_copy_on_write_and_fault_handling() -> None:
    kernel, user = _spaces()
    user.map(USER, 0x3000, URW, False, Cow())
    w = _cpu(user)
    assert _walk(w, USER + 8, "read") == (Reason.INVALID, LOAD_PAGE_FAULT, USER + 8)
    assert user.handle_page_fault(USER + 8, F.WRITE)
    assert _walk(w, USER + 8, "write")[0] == Reason.OK
    user.write(USER, b"parent")
    child = user.try_clone()
    wc = _cpu(child)
    assert _walk(wc, USER, "write") == (Reason.PERMISSION, STORE_PAGE_FAULT, USER)
    assert _walk(w, USER, "write")[0] == Reason.PERMISSION          # the parent lost W too
    assert child.handle_page_fault(USER, F.WRITE)
    child.write(USER, b"child!")
    assert (user.read(USER, 6), child.read(USER, 6)) == (b"parent", b"child!")
    assert _walk(w, USER, "read")[2] != _walk(wc, USER, "read")[2]
    assert user.handle_page_fault(USER, F.WRITE)                    # the sole owner: W back in place
    assert _walk(w, USER, "write")[0] == Reason.OK
    assert not user.handle_page_fault(USER + 0x3000, F.READ)        # no area there
    assert user.maps() == "00400000-00403000 rw-p 00000000 00:00 0 [cow]"      # 32-bit VAs: 8 digits
    for space in (child, user, kernel):
        space.destroy()
    assert user.frames.in_use == 0


def test_user_pointers_on_an_sv32_space() -> None:
    kernel, user = _spaces()
    check_user_pointers(kernel, user, USER, PAGE_OFFSET, lambda: _cpu(user))
