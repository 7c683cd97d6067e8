"""The vector and explain commands: `pagetable vectors generate|build|show|check|verify`
(docs/vectors.md, docs/vectors-spec.md) and
`pagetable explain`."""

from __future__ import annotations

import argparse
import collections
import json
import os

from .. import registry
from ..errors import PagetableError
from ..listing import permissions, ptdump_lines
from ..vectors import SCHEMA, VectorSet, expected_cases, writers
from ..vectors.build import build, fault_depths, fault_kinds
from ..vectors.coverage import coverage_lines
from ..vectors.qemu import QemuFailed, QemuUnavailable, ToolchainFailed, ToolchainUnavailable
from ..vectors.spec import read_spec
from ..vectors.updates import after_accesses
from ..vectors.verify import check_images, qemu_refusal, show, verify_qemu_set, verify_walker
from ..walker import Walker
from .common import NOTES_SHOWN, Parser, number


def cmd_generate(ns: argparse.Namespace) -> int:
    arch = registry.by_mode(ns.mode)
    for other, actions in getattr(ns, "arch_options", {}).items():      # another architecture's options do not apply
        for action in actions:
            if other != arch.name and getattr(ns, action.dest) != action.default:
                raise PagetableError(f"{action.option_strings[0]} is an option of the {other} modes, not of "
                                     f"{ns.mode}")
    formats = writers.parse_formats(ns.formats)
    vs = arch.generate(ns)
    _write(vs, arch, ns, formats, f"seed {ns.seed}")
    print(f"wrote {len(vs.cases)} cases for {vs.mode} (seed {ns.seed}) to {ns.out}")
    return 0


def cmd_build(ns: argparse.Namespace) -> int:
    """`vectors build SPEC.toml --out DIR`: the vector set of a described address space (docs/vectors-spec.md)."""
    formats = writers.parse_formats(ns.formats)
    spec = read_spec(ns.spec)
    vs = build(spec)
    arch = registry.by_name(vs.arch)
    _write(vs, arch, ns, formats, f"built from {os.path.basename(spec.path)} (copied as spec.toml), seed {spec.seed}")
    writers.write_spec(spec.text, ns.out)
    print(f"wrote {len(vs.cases)} cases for {vs.mode} (spec {spec.path}) to {ns.out}")
    return 0


def cmd_faults(ns: argparse.Namespace) -> int:
    """`vectors faults --mode M`: the fault kinds a spec may name in each table of the mode, with their levels."""
    for stage, fmt, kinds in fault_kinds(ns.mode):
        print(f"{fmt.name} (stage {stage}):")
        for kind, rule in kinds.items():
            levels = ", ".join(str(fmt.levels[d].arch_level) for d in fault_depths(fmt, rule)) or "no entry"
            print(f"  {kind:<24} levels {levels:<14} {rule.doc}")
    return 0


def _write(vs: VectorSet, arch: registry.Architecture, ns: argparse.Namespace, formats: tuple[str, ...],
           made: str) -> None:
    """Write a vector set in `formats` (with mem-after.bin when ns.hardware_updates) and its README."""
    faults = vs.faults()
    images = "\n".join(f"{name:<12}physical memory image, loaded at {r.base:#x} ({r.size} bytes)"
                        for name, r in zip(vs.mem.file_names(), vs.mem.regions, strict=True))
    registers = ", ".join(f"{k} = {v:#x}" for k, v in vs.registers.items())
    readme = (f"pagetable test vectors ({vs.arch} {vs.mode}, {made})\n\n{images}\n"
              f"vectors.json registers ({registers}), walker options and "
              f"{len(vs.cases)} cases ({len(vs.cases) - faults} translations, {faults} faults)\n\n"
              "Each case: translate 'va' for 'access' at 'privilege' with the options given; expect 'pa',\n"
              f"{arch.readme_notes(vs)}"
              f"Schema: {SCHEMA} (docs/vectors.md in the pagetable project).\n")
    if ns.hardware_updates:
        after, writes = after_accesses(vs, registry.walker_for(vs))
        names = ", ".join(after.file_names("mem-after"))
        made = f"with the {writes} entry writes the hardware makes" if writes else "(the hardware writes no entry)"
        readme += f"\n{names}: the memory after the cases ran in order, {made} (A/D bits; docs/vectors.md)\n"
    others = [writers.FILES[f] for f in formats if f in writers.FILES]
    if others:
        readme += (f"\nThe same image and registers as {', '.join(others)} (--formats {ns.formats}; docs/vectors.md, "
                   f"Output formats).\n")
    writers.write_formats(vs, registry.walker_for(vs), ns.out, formats, readme, ns.hex_width, ns.hex_offset)
    if ns.hardware_updates:
        after.save(ns.out, "mem-after")


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
    if ns.coverage:
        for line in coverage_lines(walker, vs):
            print(line)
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
                  f"{show(c.outcome(with_syndrome, attributes))}, walker says "
                  f"{show(w.outcome(with_syndrome, attributes))} ({w.reason})")
    print(f"{len(vs.cases) - bad} passed, {bad} failed")
    return 1 if bad else 0


def cmd_verify(ns: argparse.Namespace) -> int:
    """`vectors verify DIR [--qemu] [--json] [--shown N]`: the images against their SHA-256, every case against the
    walker or (with --qemu) QEMU; exit 1 on a disagreement that is not a named deviation, or a changed image."""
    vs = VectorSet.read(ns.dir)
    if ns.qemu:
        refusal = qemu_refusal(vs)
        if refusal is not None:
            raise PagetableError(refusal)
        try:
            report = verify_qemu_set(vs, registry.walker_for(vs))
        except (QemuUnavailable, ToolchainUnavailable, QemuFailed, ToolchainFailed, ValueError) as exc:
            raise PagetableError(f"--qemu: {exc}") from None
    else:
        report = verify_walker(vs, registry.walker_for(vs), registry.by_name(vs.arch).attributes)
    report.images = check_images(ns.dir, vs.digests)
    if ns.json:
        print(json.dumps(report.to_json(ns.shown)))
    else:
        for line in report.lines(ns.shown):
            print(line)
    return 1 if report.failed else 0


def cmd_explain(ns: argparse.Namespace) -> int:
    arch = registry.by_cli_name(ns.arch)
    register = ns.register or arch.registers[0]
    if register not in arch.registers:
        raise PagetableError(f"{arch.cli_name} has no register {register!r} to explain "
                             f"({', '.join(arch.registers)})")
    for line in arch.explain(register, ns.value):
        print(line)
    return 0


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """The output options `generate` and `build` share."""
    p.add_argument("--hardware-updates", action="store_true",
                   help="also write mem-after.bin: the memory after the cases ran in order, with the entry writes "
                        "(A/D bits) the hardware makes")
    p.add_argument("--formats", default=",".join(writers.DEFAULT_FORMATS),
                   help=f"all, or a comma list of {','.join(writers.FORMATS)} (default: "
                        f"{','.join(writers.DEFAULT_FORMATS)}; docs/vectors.md, Output formats)")
    p.add_argument("--hex-width", type=int, choices=writers.HEX_WIDTHS, default=64,
                   help="bits per mem.hex word (default 64)")
    p.add_argument("--hex-offset", type=number, default=0,
                   help="physical address of mem.hex word address 0 (default 0)")


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """`vectors generate|build|faults|show|check|verify` and `explain`."""
    vec = sub.add_parser("vectors", help="generate, show and check test vectors").add_subparsers(
        dest="action", required=True)
    g = vec.add_parser("generate", help="build a random but deliberate address space and its cases")
    g.add_argument("--mode", required=True, choices=[m for a in registry.ARCHITECTURES for m in a.modes],
                   help="; ".join(f"{m}: {what}" for a in registry.ARCHITECTURES for m, what in a.modes.items()))
    g.add_argument("--seed", type=number, required=True)
    g.add_argument("--out", required=True, help="output directory (created)")
    g.add_argument("--cases", type=number, help="number of cases (default: every target x access x privilege)")
    _add_output_options(g)
    arch_options: dict[str, list[argparse.Action]] = {}
    for arch in registry.ARCHITECTURES:
        known = len(g._actions)
        arch.add_generate_options(g)
        arch_options[arch.name] = g._actions[known:]
    g.set_defaults(func=cmd_generate, arch_options=arch_options)
    b = vec.add_parser("build", help="build the address space a spec file describes, and its cases")
    b.add_argument("spec", help="the spec (TOML; docs/vectors-spec.md)")
    b.add_argument("--out", required=True, help="output directory (created)")
    _add_output_options(b)
    b.set_defaults(func=cmd_build)
    f = vec.add_parser("faults", help="list the fault kinds a spec may name for a mode, and their levels")
    f.add_argument("--mode", required=True, choices=[m for a in registry.ARCHITECTURES for m in a.modes])
    f.set_defaults(func=cmd_faults)
    s = vec.add_parser("show", help="list a vector set's address space and summarise its cases")
    s.add_argument("dir")
    s.add_argument("--cases", action="store_true", help="also print every case")
    s.add_argument("--coverage", action="store_true",
                   help="also count the cases by outcome, level and stage, and say which levels no case reaches")
    s.set_defaults(func=cmd_show)
    c = vec.add_parser("check", help="recompute every case with the walker")
    c.add_argument("dir")
    c.set_defaults(func=cmd_check)
    v = vec.add_parser("verify", help="check a vector set's images and every case, on the walker or QEMU")
    v.add_argument("dir")
    v.add_argument("--qemu", action="store_true", help="run every case on QEMU 7.2 (every RISC-V and AArch64 "
                   "mode, x86_64-4level, -5level, -4level+npt; docs/vectors.md)")
    v.add_argument("--shown", type=number, default=20, help="disagreements shown in detail (default 20)")
    v.add_argument("--json", action="store_true", help="print the report as one JSON object")
    v.set_defaults(func=cmd_verify)
    e = sub.add_parser("explain", help="name every field of a raw entry or register value")
    e.add_argument("value", type=number)
    e.add_argument("--arch", choices=[a.cli_name for a in registry.ARCHITECTURES],
                   default=registry.ARCHITECTURES[0].cli_name)
    e.add_argument("--register", choices=sorted({r for a in registry.ARCHITECTURES for r in a.registers}),
                   help="what VALUE is (default: the architecture's page-table entry)")
    e.set_defaults(func=cmd_explain)
