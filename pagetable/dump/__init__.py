"""Validating kernel page-table dumps (issue 14): memory images first.

`images` reads ELF cores (QEMU `dump-guest-memory`, kdump), LiME dumps and raw `FILE@BASE` files, compressed
or not, into a memory-mapped `PhysMem` with the image's holes kept, and writes ELF cores and LiME files.
`notes` decodes the CPU state QEMU's x86 cores carry ("QEMU" notes: CR0-CR4 per CPU).
The commands that walk, translate, check and compare the tables in an image build on it.
"""

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

__all__ = ["ELF_MACHINES", "Image", "ImageError", "QemuCpuState", "QemuSegment", "Segment", "cache_path",
           "open_image", "open_images", "qemu_cpu_states", "write_elf_core", "write_lime"]
