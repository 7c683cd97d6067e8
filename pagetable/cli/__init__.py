"""The `pagetable` command line: a thin layer over the library.

  pagetable vectors generate --mode sv39 --seed 1 --out DIR [--cases N] [walker options]
                                      (modes: sv39 sv48 sv57 sv39x4 sv48x4 sv57x4 sv39+sv39x4 sv48+sv48x4 sv57+sv57x4,
                                       x86_64-4level x86_64-5level ..., aarch64-4k-48 ...)
  pagetable vectors show DIR          list the address space and summarise the cases
  pagetable vectors check DIR         recompute every case with the walker; exit 1 on any disagreement
  pagetable explain --arch riscv VALUE   name every field of a PTE (or --register satp/vsatp/hgatp)
  pagetable explain --arch x86_64 VALUE  ... of an x86 paging entry (--register pte32/pae_pte/cr0/cr3/...)
  pagetable explain --arch aarch64 VALUE ... of a VMSAv8-64 descriptor (or --register tcr_el1/ttbr0_el1/vtcr_el2/...)

  The dump commands (docs/dump.md) take IMAGE... (an ELF core, a LiME file or raw FILE@BASE files) and
  REGS: --arch riscv|x86_64|aarch64 (--reg NAME=VALUE ... | --regs FILE.json | --cpu N) [--root auto] [--pa-bits N]
  pagetable translate IMAGE... REGS [--access read|write|execute|any] [--privilege user|supervisor] [--json]
            (VA... | --va-file FILE)  translate VAs through the tables of a memory image
  pagetable walk IMAGE... REGS [--format ptdump|json|csv|qemu-info-mem|qemu-info-tlb] [--range START-END]
            [--stage 1|2]             list every mapping of the tables (docs/dump-walk.md)
  pagetable check IMAGE... REGS [--json]   findings about the tables; exit 1 on an error (docs/dump-check.md)
  pagetable diff IMAGE... REGS [--image2 IMAGE...] [--other-reg NAME=VALUE ... | --other-regs FILE.json]
            [--other-cpu N] [--range S-E] [--by-entry] [--json]
                                      compare two address spaces as the hardware sees them (docs/dump-diff.md)
  pagetable plot IMAGE... REGS --out map.png|svg|pdf [--range S-E]   draw an address space (docs/dump-plot.md)
  pagetable find-roots IMAGE... --arch ARCH [--reg ...] [--top K] [--json]
                                      scan an image for page-table roots (docs/dump-find-roots.md)

Each architecture's part (modes, generate options, explain, the walker from named registers) comes from
`pagetable.registry`.

Exit status: 0 on success (for `translate`, a fault is an answer too); 1 when `vectors check` finds a case
that disagrees, `check` an error-level finding, `diff` a difference or `find-roots` no candidate; 2 for
errors in the input (missing files, malformed JSON, bad numbers, values that do not fit a register, tables
that cannot be walked; for the dump commands also an unknown or truncated image, unknown or missing
registers, register values selecting a reserved mode, a bad VA or `--va-file` line, a bad `--range`),
printed as one line.
Anything else escaping is a bug in pagetable (the fuzz tests in tests/test_fuzz_*.py look for them).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence

from ..errors import PagetableError
from . import dump, vectors
from .common import NUMBER, Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="pagetable", description="Page tables exactly as MMU hardware walks them.")
    sub = p.add_subparsers(dest="command", required=True)
    vectors.add_parsers(sub)
    dump.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:                                   # translate's VAs after its options: positionals, in order
        cut = extra.index("--") if "--" in extra else len(extra)     # after "--", anything is a VA
        if ns.command != "translate":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        bad = [x for x in extra[:cut] if x.startswith("-") and not NUMBER.fullmatch(x)]
        if bad:
            print(f"pagetable: error: unrecognized option {bad[0][:40]!r} (a VA that starts with '-' goes after "
                  "'--')", file=sys.stderr)
            return 2
        ns.items = [*ns.items, *extra[:cut], *extra[cut + 1:]]
    for stream in (sys.stdout, sys.stderr):             # text a terminal cannot encode is escaped, not fatal
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        rc = int(ns.func(ns))
        sys.stdout.flush()                          # a full disk or closed pipe shows here, not at exit
        return rc
    except BrokenPipeError:
        return 0
    except PagetableError as exc:
        print(f"pagetable: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("pagetable: error: out of memory (the input asks for more than this machine has)", file=sys.stderr)
        return 1
    except OSError as exc:          # writing the output failed (stdout on a full disk), or a file named in it
        what = f"{exc.filename}: " if exc.filename else "cannot write the output: "
        print(f"pagetable: error: {what}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
