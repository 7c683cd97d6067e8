"""Validating kernel page-table dumps (issue 14): memory images first.

`images` reads ELF cores (QEMU `dump-guest-memory`, kdump), LiME dumps and raw `FILE@BASE` files, compressed
or not, into a memory-mapped `PhysMem` with the image's holes kept, and writes ELF cores and LiME files.
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

__all__ = ["ELF_MACHINES", "Image", "ImageError", "Segment", "cache_path", "open_image", "open_images",
           "write_elf_core", "write_lime"]
