"""The `pagetable` command line: a thin layer over the library.

  pagetable vectors generate --mode sv39 --seed 1 --out DIR [--cases N] [walker options]
  pagetable vectors show DIR          list the address space and summarise the cases
  pagetable vectors check DIR         recompute every case with the walker; exit 1 on any disagreement
  pagetable explain --arch riscv VALUE   name every field of a PTE (or --register satp)

Errors in the input (missing files, malformed JSON, bad numbers) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Sequence

from .arch.riscv_sv39 import PTE, SATP, SPEC, Satp
from .arch.riscv_sv39.entry import pte_paddr
from .arch.riscv_sv39.walk import RiscvOptions, RiscvRules
from .errors import PagetableError
from .frames import FrameAllocator
from .listing import ptdump
from .table import PageTable
from .vectors import RISCV_MODES, VectorSet, generate_riscv
from .vectors.schema import VectorsError
from .walker import Reason, Walker


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _options(ns: argparse.Namespace) -> RiscvOptions:
    return RiscvOptions(sum=ns.sum, mxr=ns.mxr, ad=ns.ad, svnapot=ns.svnapot, svpbmt=ns.svpbmt)


def _riscv_options(doc: dict[str, object]) -> RiscvOptions:
    ad = doc.get("ad", "svade")
    if ad not in ("svade", "svadu"):
        raise VectorsError(f"options.ad must be 'svade' or 'svadu', not {ad!r}")
    flags = {}
    for key in ("sum", "mxr", "svnapot", "svpbmt"):
        value = doc.get(key, False)
        if not isinstance(value, bool):
            raise VectorsError(f"options.{key} must be true or false")
        flags[key] = value
    return RiscvOptions(ad=ad, **flags)


def _load_riscv(directory: str) -> tuple[VectorSet, RiscvRules]:
    vs = VectorSet.read(directory)
    if vs.arch != "riscv64" or vs.mode not in RISCV_MODES:
        raise VectorsError(f"{directory}: arch {vs.arch!r} mode {vs.mode!r} is not supported yet")
    if "satp" not in vs.registers:
        raise VectorsError(f"{directory}: registers.satp is missing")
    satp = Satp.decode(vs.registers["satp"])
    if satp.format is None or satp.format.name.lower() != vs.mode:
        raise VectorsError(f"{directory}: satp {vs.registers['satp']:#x} does not select {vs.mode}")
    return vs, RiscvRules(satp, _riscv_options(vs.options))


def cmd_generate(ns: argparse.Namespace) -> int:
    vs = generate_riscv(ns.mode, ns.seed, ns.cases, _options(ns))
    faults = sum(c.pa is None for c in vs.cases)
    readme = (f"pagetable test vectors ({vs.arch} {vs.mode}, seed {ns.seed})\n\n"
              f"mem.bin     physical memory image, loaded at {vs.mem.regions[0].base:#x} "
              f"({vs.mem.regions[0].size} bytes)\n"
              f"vectors.json registers (satp = {vs.registers['satp']:#x}), walker options and "
              f"{len(vs.cases)} cases ({len(vs.cases) - faults} translations, {faults} faults)\n\n"
              "Each case: translate 'va' for 'access' at 'privilege' with the options given; expect 'pa',\n"
              "or the exception 'fault' raised at page-table level 'level' (the spec's i: 0 = 4 KiB level).\n"
              "Every u64 of non-table memory holds its own PA << 16, so a load reveals the PA it reached.\n"
              "Schema: pagetable-vectors/1 (docs/vectors.md in the pagetable project).\n")
    vs.write(ns.out, readme)
    print(f"wrote {len(vs.cases)} cases for {vs.mode} (seed {ns.seed}) to {ns.out}")
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    vs, rules = _load_riscv(ns.dir)
    assert rules.fmt is not None
    frames = FrameAllocator(vs.mem)
    pt = PageTable(rules.fmt, vs.mem, frames, root=rules.root)
    print(f"{vs.arch} {vs.mode}: satp {vs.registers['satp']:#x} (root table at {rules.root:#x}), "
          f"RAM {vs.mem.describe()}")
    print(f"options: {', '.join(f'{k}={v}' for k, v in vs.options.items())}")
    print()
    leaves = pt.walk()
    for line in ptdump(leaves):
        print(line)
    for problem in leaves.problems:
        print(f"note: {problem}")
    print()
    outcomes = collections.Counter(c.reason or ("ok" if c.pa is not None else c.fault) for c in vs.cases)
    print(f"{len(vs.cases)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    if ns.cases:
        for c in vs.cases:
            result = f"pa {c.pa:#x}" if c.pa is not None else f"{c.fault} at level {c.level} ({c.reason})"
            print(f"  {c.va:#018x} {c.access:<7} {c.privilege:<10} -> {result:<44} {c.label}")
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    vs, rules = _load_riscv(ns.dir)
    res = Walker(vs.mem, rules).translate_many(*vs.lanes())
    bad = 0
    for n, c in enumerate(vs.cases):
        reason = Reason(int(res.reason[n]))
        got = (int(res.pa[n]), None, None) if reason == Reason.OK else \
            (None, rules.fault_kind(reason).value, int(res.level[n]))
        if got != (c.pa, c.fault, c.level):
            bad += 1
            print(f"case {n}: {c.va:#x} {c.access} {c.privilege}: expected {c.pa, c.fault, c.level}, "
                  f"walker says {got} ({reason.label})")
    print(f"{len(vs.cases) - bad} passed, {bad} failed")
    return 1 if bad else 0


def cmd_explain(ns: argparse.Namespace) -> int:
    layout = SATP if ns.register == "satp" else PTE
    print(layout.format(ns.value))
    if layout is PTE:
        leaf = bool(ns.value & (PTE.mask("R") | PTE.mask("X")))
        kind = "leaf" if leaf else "pointer to the next level" if ns.value & 1 else "invalid (V=0)"
        print(f"  -> {kind}; PA {pte_paddr(ns.value):#x}; letters: {SPEC.letters(ns.value, False)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pagetable", description="Page tables exactly as MMU hardware walks them.")
    sub = p.add_subparsers(dest="command", required=True)
    vec = sub.add_parser("vectors", help="generate, show and check test vectors").add_subparsers(
        dest="action", required=True)
    g = vec.add_parser("generate", help="build a random but deliberate address space and its cases")
    g.add_argument("--mode", required=True, choices=sorted(RISCV_MODES))
    g.add_argument("--seed", type=_int, required=True)
    g.add_argument("--out", required=True, help="output directory (created)")
    g.add_argument("--cases", type=_int, help="number of cases (default: every target x access x privilege)")
    g.add_argument("--sum", action="store_true", help="walk with SUM=1")
    g.add_argument("--mxr", action="store_true", help="walk with MXR=1")
    g.add_argument("--ad", choices=("svade", "svadu"), default="svade",
                   help="A/D=0: page fault (Svade, default) or hardware update (Svadu)")
    g.add_argument("--svnapot", action="store_true", help="implement Svnapot")
    g.add_argument("--svpbmt", action="store_true", help="implement Svpbmt")
    g.set_defaults(func=cmd_generate)
    s = vec.add_parser("show", help="list a vector set's address space and summarise its cases")
    s.add_argument("dir")
    s.add_argument("--cases", action="store_true", help="also print every case")
    s.set_defaults(func=cmd_show)
    c = vec.add_parser("check", help="recompute every case with the walker")
    c.add_argument("dir")
    c.set_defaults(func=cmd_check)
    e = sub.add_parser("explain", help="name every field of a raw RISC-V PTE or satp value")
    e.add_argument("value", type=_int)
    e.add_argument("--arch", choices=("riscv",), default="riscv")
    e.add_argument("--register", choices=("pte", "satp"), default="pte")
    e.set_defaults(func=cmd_explain)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return int(ns.func(ns))
    except (PagetableError, ValueError) as exc:
        print(f"pagetable: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
