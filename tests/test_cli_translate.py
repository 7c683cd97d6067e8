"""`pagetable translate` over memory images: tables built with the vector generators, written out as ELF
cores, LiME and raw files, translated by the command and checked line by line against `Walker.translate` on
the same memory (PA, fault kind, level, stage, syndrome, permissions, memory type); `--access any`; 10,000
VAs from a file; and every kind of bad input refused with one line and exit status 2."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagetable import registry
from pagetable.arch.riscv_sv39.walk import HypervisorOptions, RiscvOptions
from pagetable.cli import main
from pagetable.dump import write_elf_core, write_lime
from pagetable.listing import permissions
from pagetable.vectors import VectorSet, generate_aarch64, generate_riscv, generate_x86
from pagetable.walker import Access, Walker

MODES: dict[str, tuple[Callable[..., VectorSet], str]] = {
    "sv39": (generate_riscv, "riscv"),
    "sv39+sv39x4": (generate_riscv, "riscv"),
    "x86_64-4level": (generate_x86, "x86_64"),
    "aarch64-4k-48": (generate_aarch64, "aarch64"),
}
KINDS = ("elf", "lime", "raw")


@functools.cache
def vector_set(mode: str) -> VectorSet:
    return MODES[mode][0](mode, 3, None)


def pa_bits(vs: VectorSet) -> list[str]:
    """x86 vector sets record MAXPHYADDR 40 (QEMU's), not the command's default 52."""
    return ["--pa-bits", str(vs.options["maxphyaddr"])] if "maxphyaddr" in vs.options else []


def cpu_pa_bits(vs: VectorSet) -> int | None:
    """The physical-address width a set's CPU walks with, as `--pa-bits` gives it: the recorded MAXPHYADDR
    (x86) or PA range (AArch64), 52 in the 52-bit modes; in x86-32 (a CPU without PSE-36) 32, with which
    32-bit paging reserves a 4 MiB page's PDE bits 20:13 as a CPU without PSE-36 does (M = min(MAXPHYADDR,
    40) = 32: SDM Vol. 3A Table 4-4)."""
    if vs.mode == "x86-32":
        return 32
    bits = vs.options.get("maxphyaddr", vs.options.get("pa_range", 52 if "52" in vs.mode else None))
    return None if bits is None else int(bits)


def walker(vs: VectorSet) -> Walker:
    """The walker the dump commands make of `vs`'s registers: any output address a target (an image's holes
    are devices), where `vs`'s own walker faults on a PA without RAM."""
    arch = registry.by_name(vs.arch)
    assert arch.walker_from_registers is not None
    return arch.walker_from_registers(vs.mem, dict(vs.registers), vs.options.get("maxphyaddr")).beyond_ram()


def image(vs: VectorSet, kind: str, d: Path) -> list[str]:
    """`vs`'s memory written as `kind`: the command's image arguments."""
    if kind == "elf":
        write_elf_core(d / "core.elf", vs.mem, vs.arch)
        return [str(d / "core.elf")]
    if kind == "lime":
        write_lime(d / "mem.lime", vs.mem)
        return [str(d / "mem.lime")]
    specs = []
    for n, r in enumerate(vs.mem.regions):
        (d / f"ram{n}.bin").write_bytes(bytes(r.data))
        specs.append(f"{d / f'ram{n}.bin'}@{r.base:#x}")
    return specs


def registers(vs: VectorSet) -> list[str]:
    return [a for k, v in vs.registers.items() for a in ("--reg", f"{k}={v:#x}")]


def command(vs: VectorSet, images: list[str], *extra: str) -> list[str]:
    return ["translate", *images, "--arch", MODES[vs.mode][1], *registers(vs), *pa_bits(vs), *extra]


def case_vas(vs: VectorSet) -> list[int]:
    return sorted({c.va for c in vs.cases})


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.splitlines()


def check_json(doc: dict[str, Any], w: Walker, va: int, access: str, privilege: str) -> None:
    t = w.translate(va, access, privilege)
    assert doc["va"] == f"{va:#x}"
    assert doc["level"] == t.level and doc["stage"] == t.stage
    if t.ok:
        assert doc["pa"] == f"{t.pa:#x}" and doc["fault"] is None and doc["syndrome"] == {}
        assert doc["perms"] == permissions(t.perms) and doc["memtype"] == t.memtype.label
    else:
        assert doc["pa"] is None and doc["perms"] is None
        assert t.fault is not None and doc["fault"] == t.fault.value and doc["reason"] == t.reason.label
        assert doc["syndrome"] == {k: f"{v:#x}" for k, v in t.syndrome.items()}
    if w.stage2 is not None:
        assert doc["gpa"] == f"{t.gpa or 0:#x}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_json_lines_agree_with_the_walker(mode: str, kind: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set(mode)
    w, vas = walker(vs), case_vas(vs)
    images = image(vs, kind, tmp_path)
    for access, privilege in (("read", "supervisor"), ("write", "user"), ("execute", "supervisor")):
        lines = run(capsys, command(vs, images, "--json", "--access", access, "--privilege", privilege,
                                    *map(hex, vas)))
        assert len(lines) == len(vas)
        for va, line in zip(vas, lines, strict=True):
            check_json(json.loads(line), w, va, access, privilege)


@pytest.mark.parametrize("mode", MODES)
def test_text_lines_agree_with_the_walker(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set(mode)
    w, vas = walker(vs), case_vas(vs)
    lines = run(capsys, command(vs, image(vs, "elf", tmp_path), *map(hex, vas)))
    faults = 0
    for va, line in zip(vas, lines, strict=True):
        t = w.translate(va)
        head = f"{va:#018x} -> "
        assert line.startswith(head)
        if t.ok:
            assert line.startswith(f"{head}{t.pa:#x}") and permissions(t.perms) in line
            assert f"(level {t.level})" in line
        else:
            faults += 1
            assert t.fault is not None
            assert line.startswith(f"{head}{t.fault.value} ({t.reason.label}) at level {t.level} stage {t.stage}")
            assert all(f"{k}={v:#x}" in line for k, v in t.syndrome.items())
    assert 0 < faults < len(vas)


@pytest.mark.parametrize("mode", MODES)
def test_access_any_translates_as_a_debugger(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set(mode)
    w, vas = walker(vs), case_vas(vs)
    for privilege in ("user", "supervisor"):
        lines = run(capsys, command(vs, image(vs, "lime", tmp_path), "--json", "--access", "any", "--privilege",
                                    privilege, *map(hex, vas)))
        for va, line in zip(vas, lines, strict=True):
            doc = json.loads(line)
            each = [w.translate(va, a, privilege) for a in Access]
            ok = [t for t in each if t.ok]
            if ok:
                assert doc["pa"] == f"{ok[0].pa:#x}" and doc["perms"] == permissions(ok[0].perms)
                assert {t.pa for t in ok} == {ok[0].pa}
            else:
                check_json(doc, w, va, "read", privilege)


def test_ten_thousand_vas_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set("x86_64-4level")
    w = walker(vs)
    rng = np.random.default_rng(1)
    known = np.array(case_vas(vs), dtype=np.uint64)
    vas = (known[rng.integers(0, len(known), 10_000)] + rng.integers(0, 4096, 10_000).astype(np.uint64) & ~np.uint64(7))
    (tmp_path / "vas.txt").write_text("# VAs\n" + "\n".join(f"{v:#x}" for v in vas.tolist()) + "\n")
    images = image(vs, "elf", tmp_path)
    argv = command(vs, images, "--json", "--va-file", str(tmp_path / "vas.txt"))
    run(capsys, argv)                                   # warm: imports, the first mapping of the image
    start = time.perf_counter()
    lines = run(capsys, argv)
    took = time.perf_counter() - start
    assert len(lines) == 10_000
    assert took < 0.5, f"10,000 VAs took {took:.2f} s"
    for k in range(0, 10_000, 97):
        check_json(json.loads(lines[k]), w, int(vas[k]), "read", "supervisor")


def test_registers_from_a_vector_sets_own_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--regs vectors.json` takes a vector set's registers, and its PA width unless --pa-bits says one."""
    vs = vector_set("x86_64-4level")
    vs.write(tmp_path / "set", "")
    images, vas = image(vs, "elf", tmp_path), case_vas(vs)
    given = run(capsys, ["translate", *images, "--arch", "x86_64", *registers(vs), *pa_bits(vs), *map(hex, vas)])
    assert run(capsys, ["translate", *images, "--arch", "x86_64", "--regs", str(tmp_path / "set" / "vectors.json"),
                        *map(hex, vas)]) == given
    assert run(capsys, ["translate", *images, "--arch", "x86_64", "--regs", str(tmp_path / "set" / "vectors.json"),
                        "--pa-bits", "52", *map(hex, vas)]) != given      # MAXPHYADDR 52: other reserved bits
    moved = {**vs.registers, "cr4": vs.registers["cr4"] & ~(1 << 20)}   # CR4.SMEP clear: --reg overrides the file
    explicit = [a for k, v in moved.items() for a in ("--reg", f"{k}={v:#x}")]
    assert run(capsys, ["translate", *images, "--arch", "x86_64", "--regs", str(tmp_path / "set" / "vectors.json"),
                        "--reg", f"cr4={moved['cr4']:#x}", *map(hex, vas)]) == run(
        capsys, ["translate", *images, "--arch", "x86_64", *explicit, *pa_bits(vs), *map(hex, vas)])


def test_registers_from_a_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set("aarch64-4k-48")
    (tmp_path / "regs.json").write_text(json.dumps({k.upper(): hex(v) for k, v in vs.registers.items()}))
    images = image(vs, "elf", tmp_path)
    vas = list(map(hex, case_vas(vs)))
    by_file = run(capsys, ["translate", *images, "--arch", "aarch64", "--regs", str(tmp_path / "regs.json"), *vas])
    assert by_file == run(capsys, command(vs, images, *vas))


def error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pagetable: error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vs = vector_set("sv39")
    elf = image(vs, "elf", tmp_path)[0]
    satp = [f"--reg=satp={vs.registers['satp']:#x}"]
    base = ["translate", elf, "--arch", "riscv"]
    (tmp_path / "junk.bin").write_bytes(b"\x01\x02junk" * 100)
    data = Path(elf).read_bytes()
    (tmp_path / "short.elf").write_bytes(data[:len(data) // 2])
    (tmp_path / "vas.txt").write_text("0x1000\n\n# fine\n0x2000  # fine too\n0xzz\n")
    (tmp_path / "regs.json").write_text("{satp: 1}")
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "x86").mkdir()
    x86_core = image(vector_set("x86_64-4level"), "elf", tmp_path / "x86")[0]
    cases = {
        "not an ELF core or a LiME image": ["translate", str(tmp_path / "junk.bin"), "--arch", "riscv", *satp, "0x1"],
        "truncated": ["translate", str(tmp_path / "short.elf"), "--arch", "riscv", *satp, "0x1"],
        "missing": ["translate", str(tmp_path / "none.elf"), "--arch", "riscv", *satp, "0x1"],
        "unknown register 'cr3'": [*base, *satp, "--reg", "cr3=0", "0x1"],
        "register hgatp is missing": [*base, "--reg", "vsatp=0", "0x1"],
        "register satp is missing": [*base, "--regs", str(tmp_path / "empty.json"), "0x1"],
        "vsstatus belongs to two-stage translation": [*base, *satp, "--reg=vsstatus=0", "0x1"],
        "satp 0x2000000000000000: MODE 2": [*base, "--reg", "satp=0x2000000000000000", "0x1"],
        "hgatp 0x3000000000000000": [*base, "--reg", "hgatp=0x3000000000000000", "0x1"],
        "--reg satp: not a number": [*base, "--reg", "satp=0xgg", "0x1"],
        "does not fit a 64-bit register": [*base, "--reg", "satp=0x1_0000_0000_0000_0000", "0x1"],
        "give NAME=VALUE": [*base, "--reg", "satp", "0x1"],
        "register satp is given twice": [*base, *satp, "--reg", "SATP=0", "0x1"],
        "give the translation registers": [*base, "0x1"],
        "unrecognized option '-zz'": [*base, *satp, "0x1", "-zz"],
        "--regs": [*base, "--regs", str(tmp_path / "regs.json"), "0x1"],
        "VA 2: bad VA: not a number: 'zz'": [*base, *satp, "0x1", "zz"],
        "VA 1: bad VA: not a number: '0xzz'": [*base, *satp, "0xzz", "0x1"],
        "VA 1: bad VA: not a number: 'ffffffc004200000' (hexadecimal needs 0x)": [*base, *satp, "ffffffc004200000"],
        "with --va-file the VAs come from the file: '0x1' is not an image": [
            *base, *satp, "--va-file", str(tmp_path / "vas.txt"), "0x1"],
        "VA 1: bad VA: -0x1 is not a 64-bit address": [*base, *satp, "-1"],
        "no VA to translate": [*base, *satp],
        f"--va-file {tmp_path / 'vas.txt'} line 5: bad VA": [*base, *satp, "--va-file", str(tmp_path / "vas.txt")],
        "--va-file": [*base, *satp, "--va-file", str(tmp_path / "none.txt")],
        "PA width 60 bits": [*base, *satp, "--pa-bits", "60", "0x1"],
        "ELF core of EM_RISCV, not x86_64": ["translate", elf, "--arch", "x86_64", "--reg", "cr0=0", "0x1"],
        "--cpu: riscv cores record no translation registers": [*base, "--cpu", "0", "0x1"],
        "--cpu: a raw image records no CPU state": ["translate", f"{tmp_path / 'junk.bin'}@0", "--arch", "x86_64",
                                                    "--cpu", "0", "0x1"],
        "--cpu: the core has no QEMU CPU-state notes": ["translate", x86_core, "--arch", "x86_64",
                                                        "--cpu", "0", "0x1"],
    }
    for expected, argv in cases.items():
        assert expected in error(capsys, argv), argv
    x86 = ["translate", f"{tmp_path / 'junk.bin'}@0", "--arch", "x86_64"]
    assert "ncr3 and eptp: give one" in error(capsys, [*x86, "--reg=ncr3=0", "--reg=eptp=0x1e", "0x1"])
    assert "host_pat belongs to nested paging" in error(capsys, [*x86, "--reg=eptp=0x1e", "--reg=host_pat=0", "0x1"])
    assert "eptp 0x6 does not select 4-level EPT" in error(capsys, [*x86, "--reg=eptp=6", "0x1"])
    assert "register cr4 is missing" in error(capsys, [*x86, "--reg=ncr3=0", "--reg=cr3=0", "--reg=cr0=0", "0x1"])
    assert "cr3 is missing" in error(capsys, [*x86, "--reg", "cr0=0", "0x1"])
    assert "paging is off (CR0.PG=0)" in error(capsys, [*x86, *(f"--reg={r}=0" for r in ("cr0", "cr3", "cr4",
                                                                                             "efer")), "0x1"])
    a64 = ["translate", f"{tmp_path / 'junk.bin'}@0", "--arch", "aarch64"]
    assert "ttbr1_el1 is missing" in error(capsys, [*a64, "--reg=tcr_el1=0", "--reg=ttbr0_el1=0", "0x1"])
    assert "not both" in error(capsys, [*a64, "--reg=tcr_el1=0", "--reg=tcr_el2=0", "0x1"])
    assert "PA width 56 bits" in error(capsys, [*a64, "--reg=tcr_el2=0", "--reg=ttbr0_el2=0", "--pa-bits=56", "0x1"])


@pytest.mark.parametrize("mode", [m for a in registry.ARCHITECTURES for m in a.modes])
def test_walker_from_registers_agrees_with_the_vector_walker(mode: str) -> None:
    """The registry's walker from named registers and `walker_for` (the same decoding) agree on every case
    of every mode, two-stage ones included."""
    arch = registry.by_mode(mode)
    generators: dict[str, Callable[..., VectorSet]] = {"riscv64": generate_riscv, "x86_64": generate_x86,
                                                       "aarch64": generate_aarch64}
    vs = generators[arch.name](mode, 2, 64)
    assert arch.walker_from_registers is not None and set(vs.registers) <= set(arch.register_names)
    bits = cpu_pa_bits(vs)
    ours, theirs = arch.walker_from_registers(vs.mem, dict(vs.registers), bits), registry.walker_for(vs)
    va, acc, prv = vs.lanes()[:3]
    a, b = ours.translate_many(va, acc, prv), theirs.translate_many(va, acc, prv)
    for column in ("pa", "reason", "level", "stage", "gpa", "perms", "memtype"):
        assert (getattr(a, column) == getattr(b, column)).all(), column
    assert a.syndrome.keys() == b.syndrome.keys()
    assert all((a.syndrome[k] == b.syndrome[k]).all() for k in a.syndrome)


def test_a_compressed_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """A gzip-compressed ELF core translates as the ELF core does (decompressed once into the cache)."""
    import gzip
    monkeypatch.setenv("PAGETABLE_CACHE", str(tmp_path / "cache"))
    vs = vector_set("sv39+sv39x4")
    elf = image(vs, "elf", tmp_path)[0]
    (tmp_path / "core.elf.gz").write_bytes(gzip.compress(Path(elf).read_bytes(), compresslevel=1))
    vas = list(map(hex, case_vas(vs)))
    assert run(capsys, command(vs, [str(tmp_path / "core.elf.gz")], *vas)) == run(capsys, command(vs, [elf], *vas))


_GENERATORS: dict[str, Callable[..., VectorSet]] = {"riscv64": generate_riscv, "x86_64": generate_x86,
                                                    "aarch64": generate_aarch64}


@pytest.mark.parametrize("mode", [m for a in registry.ARCHITECTURES for m in a.modes])
def test_every_mode_written_as_an_image_translates_as_its_vectors_expect(
        mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every vector mode's memory written out (as an ELF core, or LiME for every other mode) and translated by
    the command, with the set's registers, gives each case's expected PA or fault kind and level."""
    arch = registry.by_mode(mode)
    vs = _GENERATORS[arch.name](mode, 4, 96)
    modes = list(arch.modes)
    images = image(vs, ("elf", "lime")[modes.index(mode) % 2], tmp_path)
    bits = cpu_pa_bits(vs)
    argv = ["translate", *images, "--arch", arch.cli_name, *registers(vs),
            *([] if bits is None else ["--pa-bits", str(bits)]), "--json"]
    groups: dict[tuple[str, str], list[int]] = {}
    for n, c in enumerate(vs.cases):
        groups.setdefault((c.access, c.privilege), []).append(n)
    checked = 0
    for (access, privilege), cases in groups.items():
        lines = run(capsys, [*argv, "--access", access, "--privilege", privilege,
                             "--", *(hex(vs.cases[n].va) for n in cases)])
        for n, line in zip(cases, lines, strict=True):
            c, doc = vs.cases[n], json.loads(line)
            checked += 1
            # the final access in a hole of the image: a device, to the dump commands (a VS-stage PTE there,
            # an implicit access, cannot be read: it faults as the vectors expect)
            if c.reason == "pa-outside-memory" and not c.implicit:
                assert doc["fault"] is None and doc["pa"] is not None, (mode, c)
                continue
            assert (doc["pa"], doc["fault"]) == (None if c.pa is None else f"{c.pa:#x}", c.fault), (mode, c)
            if c.fault is not None:             # a translation's case records no level
                assert (doc["level"], doc["stage"]) == (c.level, c.stage or 1), (mode, c)   # one stage: none recorded
    assert checked == len(vs.cases) and any(c.fault for c in vs.cases) and any(c.pa is not None for c in vs.cases)


@pytest.mark.parametrize(("mode", "options", "status"), [
    ("sv39", RiscvOptions(sum=True, mxr=True, ad="svadu", svpbmt=True),
     {"sstatus": 3 << 18, "menvcfg": 3 << 61}),
    ("sv39", RiscvOptions(mxr=True), {"sstatus": 1 << 19}),
    ("sv39+sv39x4", HypervisorOptions(vs_sum=True, vs_mxr=True, hs_mxr=True, ad="svadu", svpbmt=True),
     {"vsstatus": 3 << 18, "sstatus": 1 << 19, "menvcfg": 3 << 61}),
], ids=["sum-mxr-svadu-svpbmt", "mxr", "two-stage"])
def test_riscv_status_registers_select_the_walk_options(mode: str, options: Any, status: dict[str, int],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """sstatus (SUM, MXR), vsstatus (SUM, MXR) and menvcfg (PBMTE: Svpbmt, ADUE: Svadu) as registers give
    the walk the vector set's options: every case translates as the set expects (the defaults would not)."""
    vs = generate_riscv(mode, 5, 200, options)
    images = image(vs, "elf", tmp_path)
    regs = [*registers(vs), *(a for k, v in status.items() for a in ("--reg", f"{k}={v:#x}"))]
    differ = 0
    for given in (regs, registers(vs)):
        for access, privilege in {(c.access, c.privilege) for c in vs.cases}:
            cases = [c for c in vs.cases if (c.access, c.privilege) == (access, privilege)]
            lines = run(capsys, ["translate", *images, "--arch", "riscv", *given, "--json", "--access", access,
                                 "--privilege", privilege, "--", *(hex(c.va) for c in cases)])
            for c, line in zip(cases, lines, strict=True):
                doc = json.loads(line)
                same = (doc["pa"], doc["fault"]) == (None if c.pa is None else f"{c.pa:#x}", c.fault)
                if given is regs:
                    assert same or c.reason == "pa-outside-memory", (c, doc)
                else:
                    differ += not same and c.reason != "pa-outside-memory"
    assert differ > 0                                   # the options matter to these sets


def test_an_rv32_satp_selects_sv32() -> None:
    """A u32 satp with bit 31 set is RV32's (MODE Sv32): as RV64's it would be Bare with nonzero fields,
    which the privileged spec leaves UNSPECIFIED; every other value is RV64's."""
    from pagetable.vectors.riscv.modes import rv32_satp
    assert rv32_satp(0x8008_0000) and rv32_satp(0xFFFF_FFFF)
    assert not rv32_satp(0x7FFF_FFFF) and not rv32_satp(0) and not rv32_satp(0x8000_0000_0008_0000)
    vs = generate_riscv("sv32", 1, 16)
    arch = registry.by_mode("sv32")
    assert arch.walker_from_registers is not None
    walker = arch.walker_from_registers(vs.mem, {"satp": 0x8008_0000}, None)
    assert [r.fmt.name for r in walker.rules.regime.regions] == ["Sv32"]
    assert walker.rules.regime.regions[0].root == 0x8000_0000           # PPN[21:0] << 12
