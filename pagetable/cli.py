"""The `pagetable` command line: a thin layer over the library.

  pagetable vectors generate --mode sv39 --seed 1 --out DIR [--cases N] [walker options]
                                      (modes: sv39 sv48 sv57 sv39x4 sv48x4 sv39+sv39x4 sv48+sv48x4,
                                       x86_64-4level x86_64-5level ..., aarch64-4k-48 ...)
  pagetable vectors show DIR          list the address space and summarise the cases
  pagetable vectors check DIR         recompute every case with the walker; exit 1 on any disagreement
  pagetable explain --arch riscv VALUE   name every field of a PTE (or --register satp/vsatp/hgatp)
  pagetable explain --arch x86_64 VALUE  ... of an x86 paging entry (or --register cr0/cr3/cr4/efer/pat/pkru/rflags)
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
import collections
import io
import itertools
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import registry
from .dump.diff import Summary, diff_spaces
from .dump.plot import output_format, plot_space
from .dump.roots import find_roots
from .dump.space import TOP, Space, address_space
from .dump.target import Target, open_arch_images, open_target
from .dump.translate import ANY, json_lines, text_lines, translate_vas, va_column
from .dump.walk import FORMATS
from .errors import PagetableError
from .listing import permissions, ptdump_lines
from .vectors import SCHEMA, VectorSet, expected_cases
from .walker import Walker

_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9_]+)")


def _int(text: str) -> int:
    """An integer written in ASCII: decimal, 0x hex, 0o octal or 0b binary (int() would also take other
    scripts' digits)."""
    shown = text if len(text) <= 40 else f"{text[:37]}..."
    if not _NUMBER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not a number: {shown!r}")
    try:
        return int(text.strip(), 0)
    except ValueError:
        if len(text) > 4000:                        # more digits than Python converts (4,300)
            raise argparse.ArgumentTypeError(f"{shown!r} has {len(text)} digits: far more than any 64-bit "
                                             "value") from None
        raise argparse.ArgumentTypeError(f"not a number: {shown!r}") from None


def cmd_generate(ns: argparse.Namespace) -> int:
    arch = registry.by_mode(ns.mode)
    for other, actions in getattr(ns, "arch_options", {}).items():      # another architecture's options do not apply
        for action in actions:
            if other != arch.name and getattr(ns, action.dest) != action.default:
                raise PagetableError(f"{action.option_strings[0]} is an option of the {other} modes, not of "
                                     f"{ns.mode}")
    vs = arch.generate(ns)
    faults = vs.faults()
    images = "\n".join(f"{'mem.bin' if n == 0 else f'mem{n}.bin':<12}physical memory image, loaded at {r.base:#x} "
                        f"({r.size} bytes)" for n, r in enumerate(vs.mem.regions))
    registers = ", ".join(f"{k} = {v:#x}" for k, v in vs.registers.items())
    readme = (f"pagetable test vectors ({vs.arch} {vs.mode}, seed {ns.seed})\n\n{images}\n"
              f"vectors.json registers ({registers}), walker options and "
              f"{len(vs.cases)} cases ({len(vs.cases) - faults} translations, {faults} faults)\n\n"
              "Each case: translate 'va' for 'access' at 'privilege' with the options given; expect 'pa',\n"
              f"{arch.readme_notes(vs)}"
              f"Schema: {SCHEMA} (docs/vectors.md in the pagetable project).\n")
    vs.write(ns.out, readme)
    print(f"wrote {len(vs.cases)} cases for {vs.mode} (seed {ns.seed}) to {ns.out}")
    return 0


NOTES_SHOWN = 20
"""A listing prints at most this many of the walk's notes (a corrupt table can have one per table)."""


def _listing(what: str, walker: Walker) -> None:
    """Print each region of a walker's regime as the hardware reads it, as ptdump does, with what the walk
    could not follow; the title names the region's register (satp, hgatp, TTBR0_EL1, CR3)."""
    for k, region in enumerate(walker.rules.regime.regions):
        leaves = walker.mappings(region=k)
        print(f"{region.name}{f' ({what})' if what else ''}: {region.fmt.name}, root table at {region.root:#x}")
        for line in ptdump_lines(leaves):
            print(line)
        for problem in leaves.problems[:NOTES_SHOWN]:
            print(f"note: {problem}")
        if len(leaves.problems) > NOTES_SHOWN:
            print(f"note: ... and {len(leaves.problems) - NOTES_SHOWN} more notes like these")
        print()


def cmd_show(ns: argparse.Namespace) -> int:
    vs = VectorSet.read(ns.dir)
    walker = registry.walker_for(vs)
    print(f"{vs.arch} {vs.mode}: {', '.join(f'{k} {v:#x}' for k, v in vs.registers.items())}; "
          f"RAM {vs.mem.describe()}")
    print(f"options: {', '.join(f'{k}={v}' for k, v in vs.options.items())}")
    print()
    if walker.stage2 is None:
        _listing("", walker)
    else:
        _listing("stage 2, guest-physical -> host-physical", walker.stage2)
        _listing("stage 1, guest-virtual -> guest-physical, its tables read through stage 2", walker)
    outcomes = collections.Counter(c.reason or ("ok" if c.pa is not None else c.fault) for c in vs.cases)
    print(f"{len(vs.cases)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    if ns.cases:
        for c in vs.cases:
            where = "" if c.stage is None else f" stage {c.stage}"
            gpa = "" if c.gpa is None else f" {'implicit ' if c.implicit else ''}gpa {c.gpa:#x}"
            attrs = (f" {permissions(c.perms)}" if c.perms is not None else "") + (f" {c.memtype}" if c.memtype else "")
            result = (f"pa {c.pa:#x}{gpa}{attrs}" if c.pa is not None else
                      f"{c.fault} at level {c.level}{where} ({c.reason}){gpa}")
            print(f"  {c.va:#018x} {c.access:<7} {c.privilege:<10} -> {result:<44} {c.label}")
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    vs = VectorSet.read(ns.dir)
    attributes = registry.by_name(vs.arch).attributes    # translations record perms and memtype
    walked = expected_cases(registry.walker_for(vs), *vs.lanes(), attributes=attributes)
    fields = "pa, fault, level, stage, gpa, implicit, syndrome" + (", perms, memtype" if attributes else "")
    bad = 0
    for n, (c, w) in enumerate(zip(vs.cases, walked, strict=True)):
        with_syndrome = c.syndrome is not None            # a version 1 file records none
        if c.outcome(with_syndrome, attributes) != w.outcome(with_syndrome, attributes):
            bad += 1
            print(f"case {n}: {c.va:#x} {c.access} {c.privilege}: expected ({fields}) = "
                  f"{_show(c.outcome(with_syndrome, attributes))}, walker says "
                  f"{_show(w.outcome(with_syndrome, attributes))} ({w.reason})")
    print(f"{len(vs.cases) - bad} passed, {bad} failed")
    return 1 if bad else 0


def _show(values: tuple[object, ...]) -> str:
    def one(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} {one(x)}" for k, x in v.items()) + "}"
        return hex(v) if type(v) is int and v > 9 else str(v)
    return "(" + ", ".join(one(v) for v in values) + ")"


def cmd_explain(ns: argparse.Namespace) -> int:
    arch = registry.by_cli_name(ns.arch)
    register = ns.register or arch.registers[0]
    if register not in arch.registers:
        raise PagetableError(f"{arch.cli_name} has no register {register!r} to explain "
                             f"({', '.join(arch.registers)})")
    for line in arch.explain(register, ns.value):
        print(line)
    return 0


def _register_values(ns: argparse.Namespace, prefix: str = "") -> dict[str, int]:
    """The registers of `--reg NAME=VALUE ...` or `--regs FILE.json` (an object of names to numbers, or to
    strings holding numbers), names lower-cased; with `prefix` "other_", of `--other-reg`/`--other-regs`."""
    regs_file, items = getattr(ns, f"{prefix}regs"), getattr(ns, f"{prefix}reg")
    opt = f"--{prefix.replace('_', '-')}"
    pairs: list[tuple[str, object, str]] = []
    if regs_file is not None:
        try:
            with open(regs_file, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as exc:
            raise PagetableError(f"{opt}regs {regs_file}: cannot read it: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:
            raise PagetableError(f"{opt}regs {regs_file}: not JSON: {str(exc)[:200]}") from None
        if not isinstance(doc, dict):
            raise PagetableError(f"{opt}regs {regs_file}: must hold an object of register names to values")
        pairs = [(str(k), v, f"{opt}regs {regs_file}: {str(k)[:40]}") for k, v in doc.items()]
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise PagetableError(f"{opt}reg {item[:60]!r}: give NAME=VALUE (satp=0x8000000000080001, cr3=0x1000, ...)")
        pairs.append((name, value, f"{opt}reg {name.strip()[:40]}"))
    regs: dict[str, int] = {}
    for name, value, where in pairs:
        if type(value) is int:
            number = value
        elif isinstance(value, str):
            try:
                number = _int(value)
            except argparse.ArgumentTypeError as exc:
                raise PagetableError(f"{where}: {exc}") from None
        else:
            raise PagetableError(f"{where}: the value must be a number or a string holding one")
        if not 0 <= number < 1 << 64:
            raise PagetableError(f"{where}: {number:#x} does not fit a 64-bit register")
        key = name.strip().lower()
        if key in regs:
            raise PagetableError(f"{where}: register {key} is given twice")
        regs[key] = number
    return regs


def _address(text: str, where: str) -> int:
    try:
        va = _int(text)
    except argparse.ArgumentTypeError as exc:
        raise PagetableError(f"{where}: bad VA: {exc}") from None
    if not 0 <= va < 1 << 64:
        raise PagetableError(f"{where}: bad VA: {va:#x} is not a 64-bit address")
    return va


def _va_file(path: str) -> npt.NDArray[np.uint64]:
    """The VAs of a `--va-file`: one number a line; blank lines and `#` comments are skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PagetableError(f"--va-file {path}: cannot read it: {exc.strerror or exc}") from None
    fast = va_column(data)                      # the usual file: hex numbers, read with numpy
    if fast is not None:
        return fast
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise PagetableError(f"--va-file {path}: not a text file (one VA a line)") from None
    if text.isascii() and "#" not in text and "_" not in text and "+" not in text and "-" not in text:
        try:                                    # plain numbers (int() takes only ASCII here)
            plain = [int(word, 0) for word in text.split()]
        except ValueError:
            pass                                # say which line is wrong, below
        else:
            if not plain or max(plain) < 1 << 64:
                return np.array(plain, dtype=np.uint64)
    vas = []
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            vas.append(_address(text, f"--va-file {path} line {n}"))
    return np.array(vas, dtype=np.uint64)


def _target(ns: argparse.Namespace, images: Sequence[str]) -> Target:
    """The image, registers and walker of a dump command's common arguments (`_add_target_arguments`);
    what had to be assumed is said on stderr."""
    if ns.reg is not None and ns.regs is not None:
        raise PagetableError("give the translation registers with --reg NAME=VALUE ... or --regs FILE.json, not both")
    if ns.cpu is None and ns.reg is None and ns.regs is None and ns.root is None:
        raise PagetableError("give the translation registers with --reg NAME=VALUE ... or --regs FILE.json (or "
                             "--cpu N, for a core that records them, or --root auto)")
    target = open_target(images, registry.by_cli_name(ns.arch), _register_values(ns), ns.pa_bits, ns.cpu,
                         ns.root)
    for line in target.assumed:
        print(f"pagetable: note: assumed {line}", file=sys.stderr)
    return target


def _add_target_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every dump command takes after its images: the architecture, the registers (or the
    CPU whose recorded registers to use, or a scan for the roots) and the PA width."""
    _add_register_arguments(p)
    p.add_argument("--cpu", type=_int, metavar="N",
                   help="take the registers CPU N had from the image's notes (x86 QEMU cores record CR0-CR4); "
                        "--reg adds to them or overrides them")
    p.add_argument("--root", choices=("auto",),
                   help="auto: take the root registers not given (x86 cr3, riscv satp's PPN, aarch64 ttbr1_el1 "
                        "then ttbr0_el1) from the best candidates of a scan of the image (see find-roots)")


def _add_register_arguments(p: argparse.ArgumentParser) -> None:
    """The architecture, the registers by name and the PA width (`_add_target_arguments`, find-roots)."""
    p.add_argument("--arch", required=True, choices=[a.cli_name for a in registry.ARCHITECTURES])
    p.add_argument("--reg", action="append", metavar="NAME=VALUE",
                   help="a translation register, as the architecture names it, lower case (repeat): " + "; ".join(
                       f"{a.cli_name}: {', '.join(a.register_names)}" for a in registry.ARCHITECTURES))
    p.add_argument("--regs", metavar="FILE.json", help="the registers as a JSON object of names to values")
    p.add_argument("--pa-bits", type=_int, help="the PA width the CPU implements (MAXPHYADDR, PARange): " + ", ".join(
        f"{a.cli_name} {a.default_pa_bits}" for a in registry.ARCHITECTURES) + " by default")


def cmd_translate(ns: argparse.Namespace) -> int:
    items: list[str] = ns.items
    if ns.va_file is not None:
        images, vas = items, _va_file(ns.va_file)
    else:
        k = next((n for n, x in enumerate(items) if _NUMBER.fullmatch(x.strip())), len(items))
        images = items[:k]                              # the images, up to the first number: the VAs
        if k == len(items):
            raise PagetableError("no VA to translate: give VAs after the images, or --va-file FILE")
        vas = np.array([_address(v, f"VA {n}") for n, v in enumerate(items[k:], 1)], dtype=np.uint64)
    if not images:
        raise PagetableError("no memory image given (IMAGE... before the VAs)")
    walker = _target(ns, images).walker
    answers = translate_vas(walker, vas, ns.access, ns.privilege)
    for chunk in (json_lines if ns.json else text_lines)(answers, walker.stage2 is not None):
        sys.stdout.write(chunk)
    return 0


def _va_range(text: str | None) -> tuple[int, int]:
    """`--range START-END` (or `START+SIZE`): the VAs [START, END), both multiples of 4 KiB (every
    architecture's smallest page); the whole 64-bit space when not given."""
    if text is None:
        return 0, TOP + 1
    sep = "+" if "+" in text else "-"
    first, dash, second = text.partition(sep)
    try:
        start, other = _int(first), _int(second)
    except argparse.ArgumentTypeError as exc:
        raise PagetableError(f"--range {text[:80]!r}: give START-END (0xffff800000000000-0xffff900000000000): "
                             f"{exc}") from None
    end = start + other if sep == "+" else other
    if not dash or not 0 <= start < end <= TOP + 1 or (start | end) & 0xFFF:
        raise PagetableError(f"--range {text[:80]!r}: give START-END with START < END <= 2**64, both multiples "
                             "of 4 KiB")
    return start, end


def _write_lines(lines: Iterable[str]) -> None:
    """Write `lines` to stdout, a few thousand at a time."""
    each = iter(lines)
    while chunk := list(itertools.islice(each, 4096)):
        sys.stdout.write("\n".join(chunk) + "\n")


def cmd_walk(ns: argparse.Namespace) -> int:
    walker = _target(ns, ns.images).walker
    if ns.stage == 2:
        if walker.stage2 is None:
            raise PagetableError("--stage 2: the registers select one stage of translation")
        walker = walker.stage2
    start, end = _va_range(ns.range)
    _write_lines(FORMATS[ns.format](walker, start, end))
    return 0


def _add_walk_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    w = sub.add_parser("walk", help="list every mapping of the page tables of a memory image")
    w.add_argument("images", nargs="+", metavar="IMAGE",
                   help="the memory image (an ELF core or LiME file, or raw FILE@BASE files)")
    _add_target_arguments(w)
    w.add_argument("--format", choices=list(FORMATS), default="ptdump",
                   help="ptdump: Linux's debugfs page-table dump; json, csv: one row per leaf (docs/dump-walk.md); "
                        "qemu-info-mem, qemu-info-tlb: QEMU 7.2's monitor output (docs/dump-qemu-formats.md)")
    w.add_argument("--range", metavar="START-END|START+SIZE", help="only the VAs in [START, END), multiples of 4 KiB")
    w.add_argument("--stage", type=_int, choices=(1, 2), default=1,
                   help="of a two-stage walker: 1 the guest's view (VA to final PA), 2 stage 2 alone")
    w.set_defaults(func=cmd_walk)


def _spaces_noted(label: str, space: Space) -> None:
    """Say on stderr what a walk of `space` could not follow (at most NOTES_SHOWN lines)."""
    for problem in space.problems[:NOTES_SHOWN]:
        print(f"pagetable: note: {label}{problem}", file=sys.stderr)
    if len(space.problems) > NOTES_SHOWN:
        print(f"pagetable: note: {label}... and {len(space.problems) - NOTES_SHOWN} more notes like these",
              file=sys.stderr)


def cmd_diff(ns: argparse.Namespace) -> int:
    if ns.image2 is None and ns.other_reg is None and ns.other_regs is None and ns.other_cpu is None:
        raise PagetableError("nothing to compare: give the second image (--image2 IMAGE...) or the second "
                             "register set (--other-reg NAME=VALUE ..., --other-regs FILE.json, --other-cpu N)")
    if ns.other_reg is not None and ns.other_regs is not None:
        raise PagetableError("give the second register set with --other-reg NAME=VALUE ... or --other-regs "
                             "FILE.json, not both")
    start, end = _va_range(ns.range)
    a = _target(ns, ns.images)
    if ns.other_regs is None and ns.other_cpu is None:     # the first set, with --other-reg's changes
        registers = {**a.registers, **_register_values(ns, "other_")}
    else:
        registers = _register_values(ns, "other_")
    b = open_target(ns.image2 or ns.images, a.arch, registers, ns.pa_bits, ns.other_cpu)
    for line in b.assumed:
        print(f"pagetable: note: b: assumed {line}", file=sys.stderr)
    spaces = address_space(a.walker, start, end), address_space(b.walker, start, end)
    for label, space in zip(("a: ", "b: "), spaces, strict=True):
        _spaces_noted(label, space)
    changes = list(diff_spaces(*spaces, by_entry=ns.by_entry))
    _write_lines(c.json() if ns.json else c.text() for c in changes)
    summary = Summary.of(changes)
    print(summary.json() if ns.json else summary.text())
    return 1 if changes else 0


def _add_diff_parser(sub: Any) -> None:
    d = sub.add_parser("diff", help="compare two address spaces: two images, or one image with two register "
                                    "sets")
    d.add_argument("images", nargs="+", metavar="IMAGE", help="the first memory image (address space a)")
    _add_target_arguments(d)
    d.add_argument("--image2", nargs="+", metavar="IMAGE",
                   help="the second memory image (address space b; default: the first), walked with the same "
                        "registers unless --other-* says otherwise")
    d.add_argument("--other-reg", action="append", metavar="NAME=VALUE",
                   help="a register of address space b that differs from a's (repeat): cr3=..., ttbr0_el1=...")
    d.add_argument("--other-regs", metavar="FILE.json", help="address space b's registers, all of them, as JSON")
    d.add_argument("--other-cpu", type=_int, metavar="N", help="address space b takes CPU N's recorded registers "
                                                               "(of --image2's core)")
    d.add_argument("--range", metavar="START-END", help="compare the VAs [START, END) only (multiples of 4 KiB)")
    d.add_argument("--by-entry", action="store_true",
                   help="a different page size is a change too (default: only the translation counts)")
    d.add_argument("--json", action="store_true", help="one JSON object a line, the summary last")
    d.set_defaults(func=cmd_diff)


def cmd_plot(ns: argparse.Namespace) -> int:
    output_format(ns.out)                               # an unknown suffix is refused before the walk
    start, end = _va_range(ns.range)
    target = _target(ns, ns.images)
    space = address_space(target.walker, start, end)
    stages = [w.rules.regime.regions for w in (target.walker, target.walker.stage2) if w is not None]
    regions = "\nthrough stage 2: ".join(", ".join(f"{r.name} {r.root:#x} ({r.fmt.name})" for r in rs) for rs in stages)
    plot_space(space, ns.out, f"{' '.join(ns.images)[:100]}: {regions}", start, end)
    _spaces_noted("", space)
    return 0


def _add_plot_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="draw the address space of a memory image's tables (PNG, SVG, PDF)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="the memory image (an ELF core or LiME file, or raw "
                                                              "FILE@BASE files)")
    _add_target_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE", help="the picture: map.png, map.svg or map.pdf")
    p.add_argument("--range", metavar="START-END", help="draw the VAs [START, END) only (multiples of 4 KiB)")
    p.set_defaults(func=cmd_plot)


class _Parser(argparse.ArgumentParser):
    """argparse with values like -0x1 taken as (negative) numbers, not as unknown options, so that the
    command can say what is wrong with them."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self._negative_number_matcher = re.compile(r"^-\.?\d")


def cmd_check_image(ns: argparse.Namespace) -> int:
    """`pagetable check`: the findings (`dump.check`), one a line, and a summary; 1 if one is an error."""
    from .dump.check import check, finding_json, finding_line, summary_line

    findings = check(_target(ns, ns.images))
    lines = [finding_json(f) if ns.json else finding_line(f) for f in findings]
    sys.stdout.write("".join(line + "\n" for line in lines))
    if not ns.json:
        print(summary_line(findings))
    return 1 if any(f.severity == "error" for f in findings) else 0


def _add_check_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    c = sub.add_parser("check", help="find suspicious or broken mappings in the page tables of a memory image")
    c.add_argument("images", nargs="+", metavar="IMAGE",
                   help="the memory image (an ELF core or LiME file, or raw FILE@BASE files)")
    _add_target_arguments(c)
    c.add_argument("--json", action="store_true", help="one JSON object a line, no summary")
    c.set_defaults(func=cmd_check_image)


def cmd_find_roots(ns: argparse.Namespace) -> int:
    if ns.reg is not None and ns.regs is not None:
        raise PagetableError("give the registers with --reg NAME=VALUE ... or --regs FILE.json, not both")
    arch = registry.by_cli_name(ns.arch)
    ranked = find_roots(open_arch_images(ns.images, arch), arch, _register_values(ns), ns.pa_bits, ns.top)
    for c in ranked:
        print(json.dumps(c.as_json()) if ns.json else c.describe())
    if not ranked:
        print(f"pagetable: note: no {arch.cli_name} page-table root candidate in the image", file=sys.stderr)
    return 0 if ranked else 1


def _add_find_roots_parser(sub: Any) -> None:
    f = sub.add_parser("find-roots", help="scan a memory image for page-table roots and rank them")
    f.add_argument("images", nargs="+", metavar="IMAGE",
                   help="the memory image (an ELF core or LiME file, or raw FILE@BASE files)")
    _add_register_arguments(f)
    f.add_argument("--top", type=_int, default=10, metavar="K", help="print the K best candidates (default 10)")
    f.add_argument("--json", action="store_true", help="one JSON object a line")
    f.set_defaults(func=cmd_find_roots)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pagetable", description="Page tables exactly as MMU hardware walks them.")
    sub = p.add_subparsers(dest="command", required=True)
    vec = sub.add_parser("vectors", help="generate, show and check test vectors").add_subparsers(
        dest="action", required=True)
    g = vec.add_parser("generate", help="build a random but deliberate address space and its cases")
    g.add_argument("--mode", required=True, choices=[m for a in registry.ARCHITECTURES for m in a.modes],
                   help="; ".join(f"{m}: {what}" for a in registry.ARCHITECTURES for m, what in a.modes.items()))
    g.add_argument("--seed", type=_int, required=True)
    g.add_argument("--out", required=True, help="output directory (created)")
    g.add_argument("--cases", type=_int, help="number of cases (default: every target x access x privilege)")
    arch_options: dict[str, list[argparse.Action]] = {}
    for arch in registry.ARCHITECTURES:
        known = len(g._actions)
        arch.add_generate_options(g)
        arch_options[arch.name] = g._actions[known:]
    g.set_defaults(func=cmd_generate, arch_options=arch_options)
    s = vec.add_parser("show", help="list a vector set's address space and summarise its cases")
    s.add_argument("dir")
    s.add_argument("--cases", action="store_true", help="also print every case")
    s.set_defaults(func=cmd_show)
    c = vec.add_parser("check", help="recompute every case with the walker")
    c.add_argument("dir")
    c.set_defaults(func=cmd_check)
    e = sub.add_parser("explain", help="name every field of a raw entry or register value")
    e.add_argument("value", type=_int)
    e.add_argument("--arch", choices=[a.cli_name for a in registry.ARCHITECTURES],
                   default=registry.ARCHITECTURES[0].cli_name)
    e.add_argument("--register", choices=sorted({r for a in registry.ARCHITECTURES for r in a.registers}),
                   help="what VALUE is (default: the architecture's page-table entry)")
    e.set_defaults(func=cmd_explain)
    t = sub.add_parser("translate", help="translate VAs through the page tables of a memory image")
    t.add_argument("items", nargs="+", metavar="IMAGE... VA...",
                   help="the memory image (an ELF core or LiME file, or raw FILE@BASE files), then the VAs")
    _add_target_arguments(t)
    t.add_argument("--access", choices=("read", "write", "execute", ANY), default="read",
                   help="the access to translate for (any: the PA if any access translates, as a debugger "
                        "reads memory; the permissions say which)")
    t.add_argument("--privilege", choices=("user", "supervisor"), default="supervisor")
    t.add_argument("--json", action="store_true", help="one JSON object a line")
    t.add_argument("--va-file", metavar="FILE", help="the VAs, one a line (then every argument is an image)")
    t.set_defaults(func=cmd_translate)
    _add_walk_parser(sub)
    _add_check_parser(sub)
    _add_diff_parser(sub)
    _add_plot_parser(sub)
    _add_find_roots_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:                                   # translate's VAs after its options: positionals, in order
        cut = extra.index("--") if "--" in extra else len(extra)     # after "--", anything is a VA
        if ns.command != "translate":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        bad = [x for x in extra[:cut] if x.startswith("-") and not _NUMBER.fullmatch(x)]
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


if __name__ == "__main__":
    sys.exit(main())
