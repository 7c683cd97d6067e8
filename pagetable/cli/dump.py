"""The dump commands (docs/dump.md): `pagetable translate`, `walk`, `check`, `diff`, `plot` and `find-roots`
over a memory image, with the image and register arguments they share (`add_target_arguments`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import registry
from ..dump.diff import Summary, diff_spaces
from ..dump.plot import output_format, plot_space
from ..dump.roots import find_roots
from ..dump.space import TOP, Space, address_space
from ..dump.target import Target, open_arch_images, open_target
from ..dump.translate import ANY, json_lines, text_lines, translate_vas, va_column
from ..dump.walk import FORMATS
from ..errors import PagetableError
from .common import NOTES_SHOWN, NUMBER, Parser, number, write_lines


def _register_values(ns: argparse.Namespace, prefix: str = "") -> dict[str, int]:
    """The registers of `--reg NAME=VALUE ...` or `--regs FILE.json` (an object of names to numbers, or to
    strings holding numbers; or a vector set's vectors.json: its registers, and its PA width when `--pa-bits`
    is not given), a `--reg` overriding the file's value, names lower-cased; with `prefix` "other_", of
    `--other-reg`/`--other-regs`."""
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
        if isinstance(doc, dict) and str(doc.get("schema", "")).startswith("pagetable-vectors/") and \
                isinstance(doc.get("registers"), dict):     # a vector set's vectors.json: its registers
            options = doc.get("options")
            width = options.get("maxphyaddr", options.get("pa_range")) if isinstance(options, dict) else None
            if getattr(ns, "pa_bits", 0) is None and type(width) is int:    # and the PA width it assumes
                ns.pa_bits = width
            doc = doc["registers"]
        if not isinstance(doc, dict):
            raise PagetableError(f"{opt}regs {regs_file}: must hold an object of register names to values")
        pairs = [(str(k), v, f"{opt}regs {regs_file}: {str(k)[:40]}") for k, v in doc.items()]
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise PagetableError(f"{opt}reg {item[:60]!r}: give NAME=VALUE (satp=0x8000000000080001, cr3=0x1000, ...)")
        pairs.append((name, value, f"{opt}reg {name.strip()[:40]}"))
    regs: dict[str, int] = {}
    from_file: set[str] = set()                     # a --reg after --regs overrides the file's value
    for name, value, where in pairs:
        if type(value) is int:
            given = value
        elif isinstance(value, str):
            try:
                given = number(value)
            except argparse.ArgumentTypeError as exc:
                raise PagetableError(f"{where}: {exc}") from None
        else:
            raise PagetableError(f"{where}: the value must be a number or a string holding one")
        if not 0 <= given < 1 << 64:
            raise PagetableError(f"{where}: {given:#x} does not fit a 64-bit register")
        key = name.strip().lower()
        if key in regs and (key not in from_file or where.startswith(f"{opt}regs ")):
            raise PagetableError(f"{where}: register {key} is given twice")
        from_file.discard(key)
        if where.startswith(f"{opt}regs "):
            from_file.add(key)
        regs[key] = given
    return regs


def _address(text: str, where: str) -> int:
    try:
        va = number(text)
    except argparse.ArgumentTypeError as exc:
        hint = " (hexadecimal needs 0x)" if re.fullmatch(r"[0-9a-fA-F_]+", text.strip()) else ""
        raise PagetableError(f"{where}: bad VA: {exc}{hint}") from None
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
    p.add_argument("--cpu", type=number, metavar="N",
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
    p.add_argument("--pa-bits", type=number, help="the PA width the CPU implements (MAXPHYADDR, PARange): " + ", ".join(
        f"{a.cli_name} {a.default_pa_bits}" for a in registry.ARCHITECTURES) + " by default")


def cmd_translate(ns: argparse.Namespace) -> int:
    items: list[str] = ns.items
    # the images come first: files, or raw FILE@BASE; the first argument that is neither starts the VAs
    k = next((n for n, x in enumerate(items) if n and (("@" not in x and not os.path.exists(x)) or
                                                       NUMBER.fullmatch(x.strip()))), len(items))
    images = items[:k]
    if ns.va_file is not None:
        if k < len(items):
            raise PagetableError(f"with --va-file the VAs come from the file: {items[k][:40]!r} is not an image")
        vas = _va_file(ns.va_file)
    else:
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
        start, other = number(first), number(second)
    except argparse.ArgumentTypeError as exc:
        raise PagetableError(f"--range {text[:80]!r}: give START-END (0xffff800000000000-0xffff900000000000): "
                             f"{exc}") from None
    end = start + other if sep == "+" else other
    if not dash or not 0 <= start < end <= TOP + 1 or (start | end) & 0xFFF:
        raise PagetableError(f"--range {text[:80]!r}: give START-END with START < END <= 2**64, both multiples "
                             "of 4 KiB")
    return start, end


def cmd_walk(ns: argparse.Namespace) -> int:
    walker = _target(ns, ns.images).walker
    if ns.stage == 2:
        if walker.stage2 is None:
            raise PagetableError("--stage 2: the registers select one stage of translation")
        walker = walker.stage2
    start, end = _va_range(ns.range)
    write_lines(FORMATS[ns.format](walker, start, end))
    return 0


def _add_walk_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    w = sub.add_parser("walk", help="list every mapping of the page tables of a memory image")
    w.add_argument("images", nargs="+", metavar="IMAGE",
                   help="the memory image (an ELF core or LiME file, or raw FILE@BASE files)")
    _add_target_arguments(w)
    w.add_argument("--format", choices=list(FORMATS), default="ptdump",
                   help="ptdump: Linux's debugfs page-table dump; json, csv: one row per leaf (docs/dump-walk.md); "
                        "qemu-info-mem, qemu-info-tlb: QEMU 7.2's monitor output (docs/dump-qemu-formats.md)")
    w.add_argument("--range", metavar="START-END|START+SIZE", help="only the VAs in [START, END), multiples of 4 KiB")
    w.add_argument("--stage", type=number, choices=(1, 2), default=1,
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
    try:
        b = open_target(ns.image2 or ns.images, a.arch, registers, ns.pa_bits, ns.other_cpu)
    except PagetableError as exc:           # say which side's options are wrong
        text = str(exc)
        raise PagetableError(f"the second address space: {text.replace('--cpu', '--other-cpu', 1)}") from None
    for line in b.assumed:
        print(f"pagetable: note: b: assumed {line}", file=sys.stderr)
    spaces = address_space(a.walker, start, end), address_space(b.walker, start, end)
    for label, space in zip(("a: ", "b: "), spaces, strict=True):
        _spaces_noted(label, space)
    changes = list(diff_spaces(*spaces, by_entry=ns.by_entry))
    write_lines(c.json() if ns.json else c.text() for c in changes)
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
    d.add_argument("--other-cpu", type=number, metavar="N", help="address space b takes CPU N's recorded registers "
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


def cmd_check_image(ns: argparse.Namespace) -> int:
    """`pagetable check`: the findings (`dump.check`), one a line, and a summary; 1 if one is an error."""
    from ..dump.check import check, finding_json, finding_line, summary_line

    findings = check(_target(ns, ns.images))
    lines = [finding_json(f) if ns.json else finding_line(f) for f in findings]
    sys.stdout.write("".join(line + "\n" for line in lines))
    if not ns.json:
        print(summary_line(findings))
    return 1 if any(f.severity == "error" for f in findings) else 0


def _add_check_parser(sub: argparse._SubParsersAction[Parser]) -> None:
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
    f.add_argument("--top", type=number, default=10, metavar="K", help="print the K best candidates (default 10)")
    f.add_argument("--json", action="store_true", help="one JSON object a line")
    f.set_defaults(func=cmd_find_roots)


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """The dump commands' parsers."""
    t = sub.add_parser("translate", help="translate VAs through the page tables of a memory image")
    t.add_argument("items", nargs="+", metavar="IMAGE... VA...",
                   help="the memory image (an ELF core or LiME file, or raw FILE@BASE files), then the VAs")
    _add_target_arguments(t)
    t.add_argument("--access", choices=("read", "write", "execute", ANY), default="read",
                   help="the access to translate for (default read; any: the PA if any access translates, as a "
                        "debugger reads memory; the permissions say which)")
    t.add_argument("--privilege", choices=("user", "supervisor"), default="supervisor",
                   help="the privilege of the access (default supervisor)")
    t.add_argument("--json", action="store_true", help="one JSON object a line")
    t.add_argument("--va-file", metavar="FILE", help="the VAs, one a line (then every argument is an image)")
    t.set_defaults(func=cmd_translate)
    _add_walk_parser(sub)
    _add_check_parser(sub)
    _add_diff_parser(sub)
    _add_plot_parser(sub)
    _add_find_roots_parser(sub)
