"""pagetable: write and read page tables exactly as MMU hardware walks them.

Library entry points (see README.md):
- `PhysMem` (physical memory as numpy arrays) and `FrameAllocator` (frames with reference counts);
- `PagingFormat` objects per mode (`pagetable.arch.riscv_sv39.SV39`, `SV48`, `SV57`) with their entry codecs;
- `PageTable` (map/unmap/query/protect, vectorised regions, walk, copy_from) over a format and memory;
- `Walker` with an architecture's rules (`pagetable.arch.riscv_sv39.walk.RiscvRules`): translate one or a
  million addresses the way the MMU does, faults included;
- `pagetable.vectors`: test-vector generation, the `pagetable-vectors/1` format and the QEMU harness.
"""

from .errors import (
    AlreadyMapped,
    InvalidAddress,
    InvalidArgument,
    InvalidArgumentType,
    InvalidFlags,
    MappedToHugePage,
    NoMemory,
    NotAligned,
    NotATree,
    NotMapped,
    PagetableError,
    PagingError,
    PhysMemError,
)
from .flags import MappingFlags, PageSize, PhysAddr, VirtAddr
from .format import Level, PagingFormat
from .frames import FrameAllocator
from .mappings import Mapping, Mappings
from .physmem import PhysMem
from .table import PageTable
from .walker import Access, FaultKind, Privilege, Reason, Translation, Translations, Walker

__all__ = [
    "Access", "AlreadyMapped", "FaultKind", "FrameAllocator", "InvalidAddress", "InvalidArgument",
    "InvalidArgumentType", "InvalidFlags", "Level", "MappedToHugePage", "Mapping", "MappingFlags", "Mappings",
    "NoMemory", "NotATree", "NotAligned", "NotMapped", "PageSize",
    "PageTable", "PagetableError", "PagingError", "PagingFormat", "PhysAddr", "PhysMem", "PhysMemError",
    "Privilege", "Reason", "Translation", "Translations", "VirtAddr", "Walker",
]
__version__ = "0.1.0"
