"""Validating kernel page-table dumps: what `pagetable translate`, `walk`, `check`, `diff`, `plot` and
`find-roots` do, as a library (docs/dump.md).

- `images` reads ELF cores (QEMU `dump-guest-memory`, kdump), LiME dumps and raw `FILE@BASE` files,
  compressed or not, into a memory-mapped `PhysMem` with the image's holes kept, and writes ELF cores and
  LiME files; `notes` decodes the CPU state QEMU's x86 cores carry ("QEMU" notes: CR0-CR4 per CPU).
- `target` opens an image with the registers that select its tables (named, recorded per CPU, or found by
  `roots`) and builds their walker.
- `translate` answers many VAs at once; `space` gives the hardware view of a whole address space (every
  region); `check` turns it into findings; `diff` compares two; `plot` draws one (matplotlib, imported
  when drawing); `qemu_monitor` prints QEMU's `info mem` / `info tlb`.
"""

from .check import RULES, Finding, check
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
from .qemu_monitor import info_mem_lines, info_tlb_lines
from .roots import Candidate, auto_root, find_roots
from .space import RegionSpan, Space, address_space
from .target import Target, cpu_registers, open_target
from .translate import ANY, Answers, translate_vas

__all__ = ["ANY", "ELF_MACHINES", "RULES", "Answers", "Candidate", "Change", "Finding", "Image", "ImageError",
           "QemuCpuState", "QemuSegment", "RegionSpan", "Segment", "Side", "Space", "Summary", "Target",
           "address_space", "auto_root", "cache_path", "check", "cpu_registers", "diff_spaces", "find_roots",
           "info_mem_lines", "info_tlb_lines", "open_image", "open_images", "open_target", "plot_space",
           "qemu_cpu_states", "translate_vas", "write_elf_core", "write_lime"]
