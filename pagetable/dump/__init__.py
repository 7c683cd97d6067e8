"""Validating kernel page-table dumps (issue 14): memory images first.

`images` reads ELF cores (QEMU `dump-guest-memory`, kdump), LiME dumps and raw `FILE@BASE` files, compressed
or not, into a memory-mapped `PhysMem` with the image's holes kept, and writes ELF cores and LiME files.
`notes` decodes the CPU state QEMU's x86 cores carry ("QEMU" notes: CR0-CR4 per CPU).
`space` gives the hardware view of a whole address space (every region), `diff` compares two of them and
`plot` draws one (matplotlib, imported when drawing). The commands that walk, translate, check and compare
the tables in an image build on them.
"""

from .diff import Change, Side, Summary, diff_spaces
from .images import (
           ELF_MACHINES,
           Image,
           ImageError,
           Segment,
           cache_path,
           open_image,
           open_images,
           write_elf_core,
           write_lime,
)
from .notes import QemuCpuState, QemuSegment, qemu_cpu_states
from .plot import plot_space
from .space import RegionSpan, Space, address_space

__all__ = ["ELF_MACHINES", "Change", "Image", "ImageError", "QemuCpuState", "QemuSegment", "RegionSpan", "Segment",
           "Side", "Space", "Summary", "address_space", "cache_path", "diff_spaces", "open_image", "open_images",
           "plot_space", "qemu_cpu_states", "write_elf_core", "write_lime"]
