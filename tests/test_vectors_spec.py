"""`pagetable vectors build SPEC.toml`: the spec format's errors (each kind of mistake gives the file, line
and key, exit status 2, one line), exact entry bytes against the manuals' bit tables, explicit PAs kept free
of tables, reproducible bytes, every fault kind at every level it may sit at in every mode (tests/specscenes.py),
the examples in docs/specs/, and QEMU agreement for each architecture's modes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pagetable import registry
from pagetable.arch.riscv_sv39.entry import A, D, G, R, U, V, W, X
from pagetable.arch.x86_64.entry import PS, RW, US, XD, P, pat_index_bits
from pagetable.arch.x86_64.entry import G as X86_G
from pagetable.cli import main
from pagetable.vectors import VectorSet
from pagetable.vectors.aarch64.deviations import DEVICE as A64_DEVICE
from pagetable.vectors.build import GENERIC_RULES, SpecArch, build, fault_depths
from pagetable.vectors.riscv.deviations import QEMU_DEVICE, QEMU_RV32_WIDE_VA
from pagetable.vectors.spec import SpecError, parse_spec, read_spec
from pagetable.vectors.verify import QEMU_LACKS, QEMU_MODES, qemu_refusal, verify_qemu_set
from pagetable.vectors.x86_64.deviations import DEVICE as X86_DEVICE
from pagetable.vectors.x86_64.deviations import FETCH_NO_RAM
from pagetable.walker import Walker

from .conftest import require_qemu, require_qemu_aarch64, require_qemu_x86
from .specscenes import EXCLUDED, scene

DOCS = Path(__file__).resolve().parent.parent / "docs" / "specs"
ALL_MODES = [m for a in registry.ARCHITECTURES for m in a.modes]
SV39_TEXT = """\
mode = "sv39"
seed = 3

[[map]]
label = "text"
va = 0xffff_ffff_8000_0000
pa = 0x8000_0000
size = "2M"
perms = "rx"
global = true

[[map]]
va = 0x1000
size = "8K"
perms = "rw"
user = true
"""


def _build(text: str, tmp_path: Path, name: str = "spec.toml") -> VectorSet:
    path = tmp_path / name
    path.write_text(text)
    return build(read_spec(str(path)))


def _error(text: str, tmp_path: Path) -> str:
    with pytest.raises(SpecError) as info:
        _build(text, tmp_path)
    return str(info.value)


def _walker(vs: VectorSet) -> Walker:
    return registry.walker_for(vs)


# --- spec errors: file, line, key ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("mode = \"sv39\"\n[[map]\nva = 1\n", ":2: TOML syntax: "),
    ("mode = \"sv39\"\nsed = 1\n", ":2: sed: unknown key (the keys here: mode, seed, asid, options, registers, memory, "
                                   "map, fault, access, generate)"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperm = \"r\"\n",
     ":5: map[0].perm: unknown key (the keys here: va, pa, size, perms, user, global, memtype, page, accessed, dirty, "
     "stage, label)"),
    ("mode = \"sv39\"\n[[map]]\nva = \"0x1000\"\nsize = \"4K\"\nperms = \"r\"\n",
     ":3: map[0].va: an address is an integer from 0 to 2**64 - 1 (0x8000_0000 in TOML), not '0x1000'"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4Q\"\nperms = \"r\"\n",
     ":4: map[0].size: a size is an integer or a string like \"4K\", \"2M\", \"1G\", not '4Q'"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"ru\"\n",
     ":5: map[0].perms: unknown permission 'u' in 'ru' (letters r, w, x; user access is `user = true`)"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nperms = \"r\"\n", ":2: map[0].size: is missing"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"r\"\nuser = 1\n",
     ":6: map[0].user: must be true or false, not 1"),
    ("mode = \"sv39\"\n[[access]]\nva = 0x1000\naccess = \"load\"\n",
     ":4: access[0].access: 'load' is not one of read, write, execute (or \"all\")"),
    ("mode = \"sv39\"\n\n[[fault]]\nkind = \"dirty-clear\"\nva = 0x1000\nlevel = 9\n",
     ":6: fault[0].level: must be an integer from -1 to 5, not 9"),
    ("mode = \"sv39\"\n[generate]\nrandom = -1\n", ":3: generate.random: must be an integer from 0 to 1000000, not -1"),
])
def test_a_malformed_spec_names_file_line_and_key(text: str, expected: str, tmp_path: Path) -> None:
    message = _error(text, tmp_path)
    assert message.startswith(str(tmp_path / "spec.toml")) and expected in message, message


@pytest.mark.parametrize(("text", "expected"), [
    ("mode = \"sv40\"\n[[access]]\nva = 0\n", ":1: mode: unknown mode 'sv40' (modes: sv39, sv48, "),
    ("mode = \"sv39\"\n[options]\nSUM = true\n",
     ":3: options.SUM: unknown key 'SUM' for mode sv39 (expected sum, mxr, ad, svnapot, svpbmt, seed)"),
    ("mode = \"sv39\"\n[[fault]]\nkind = \"dirty\"\nva = 0x1000\n",
     ":3: fault[0].kind: unknown fault kind 'dirty' for Sv39 (kinds: accessed-clear, dirty-clear, "),
    ("mode = \"sv39\"\n[[fault]]\nkind = \"misaligned-superpage\"\nva = 0x1000\nlevel = 0\n",
     ":5: fault[0].level: this fault goes at a level with leaves above the last (levels 2, 1), not level 0"),
    ("mode = \"sv39\"\n[[fault]]\nkind = \"invalid\"\nva = 0x1000\nlevel = 3\n",
     ":5: fault[0].level: Sv39 has no level 3 (levels 2, 1, 0)"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"8K\"\nperms = \"rw\"\n[[fault]]\nkind = \"w-without-r\"\n"
     "va = 0x2000\n", ":6: fault[0]: the level-0 entry for 0x2000 is already used by map[0] (line 2)"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"8K\"\nperms = \"rw\"\n[[map]]\nva = 0x2000\nsize = \"4K\"\n"
     "perms = \"r\"\n", ":6: map[1]: "),
    ("mode = \"sv39\"\n[options]\nad = \"svadu\"\n[[fault]]\nkind = \"dirty-clear\"\nva = 0x1000\n",
     ":4: fault[0]: the walker's write of 0x1000 gives ok (level 0), not accessed-dirty: the hardware sets A/D (AF) "
     "here (ad = \"svadu\"; TCR_ELx.HA/HD): the kind needs ad = \"svade\" (RISC-V) or HA=0"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\nmemtype = \"nc\"\n",
     ":6: map[0].memtype: no encoding of Sv39 gives memory type nc here (PBMT: nc and io need svpbmt = true in "
     "[options])"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\nmemtype = \"fast\"\n",
     ":6: map[0].memtype: unknown memory type 'fast' (device, uncached, or one of default, nc, io)"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\npage = \"2M\"\n",
     ":3: map[0].va: 0x1000 is not a multiple of the page size 0x200000"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\npage = \"8K\"\n",
     ":6: map[0].page: 0x2000 is not a page size Sv39 has (0x1000, 0x200000, 0x40000000)"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\nstage = 2\n",
     ":2: map[0]: this mode has no stage 2"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x40_0000_0000\nsize = \"4K\"\nperms = \"rw\"\n",
     ":2: map[0]: 0x4000000000 is not an address Sv39 translates"),
    ("mode = \"x86_64-4level\"\n[[map]]\nva = 0x7f80_0000_0000\nsize = \"4K\"\nperms = \"rw\"\n",
     ":2: map[0]: 0x7f8000000000 is in the root-table slot the QEMU harness keeps for itself"),
    ("mode = \"aarch64-el2-4k-48\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\nuser = true\n",
     ":6: map[0].user: VMSAv8-64 stage 1 4KB granule, 48-bit VA in this regime has no unprivileged (user) accesses: "
     "leave it out"),
    ("mode = \"x86_64-4level\"\nasid = 3\n[[access]]\nva = 0\n",
     ":2: asid: x86-64 tags TLB entries with a PCID only with CR4.PCIDE=1"),
    ("mode = \"sv39\"\n", ": access: the spec makes no cases"),
    ("mode = \"sv39\"\n[[fault]]\nkind = \"napot-bad-ppn\"\nva = 0x1000\n",
     ":3: fault[0].kind: napot-bad-ppn tests a rule of the svnapot extension: set svnapot = true in [options]"),
    ("mode = \"sv39\"\n[[map]]\nva = 0x4000_0000\nsize = \"1G\"\nperms = \"rw\"\npage = \"4K\"\n",
     ":4: map[0].size: 0x40000000 bytes of fresh frames are more than RAM has free (0x7ff000 of [0x80000000, "
     "0x80800000)): give pa, or more [[memory]]"),
])
def test_a_spec_the_address_space_cannot_hold_names_the_item(text: str, expected: str, tmp_path: Path) -> None:
    message = _error(text, tmp_path)
    assert message.startswith(str(tmp_path / "spec.toml")) and expected in message, message


def test_the_command_line_reports_a_spec_error_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("mode = \"sv39\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rq\"\n")
    assert main(["vectors", "build", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pagetable: error: {path}:5: map[0].perms: unknown permission 'q' in 'rq' (letters r, w, x; user "
                   "access is `user = true`)"]
    assert not (tmp_path / "out").exists()
    assert main(["vectors", "build", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "missing.toml: cannot read the spec: No such file or directory" in capsys.readouterr().err


# --- what a spec builds -----------------------------------------------------------------------------------

def test_sv39_entries_are_the_privileged_specs_bits(tmp_path: Path) -> None:
    """The megapage PTE is PPN << 10 | A G X R V (no D: not writable); the user pages' PTEs D A U W R V at
    fresh frames outside the text's PA; the explicit PA holds no table."""
    vs = _build(SV39_TEXT, tmp_path)
    w = _walker(vs)
    text = w.translate(0xFFFF_FFFF_8000_0000, "execute")
    assert text.ok and text.pa == 0x8000_0000 and text.level == 1
    assert text.pte == (0x8000_0000 >> 12) << 10 | A | G | X | R | V
    user = w.translate(0x1000, "write", "user")
    assert user.ok and user.pte == ((user.pa or 0) >> 12) << 10 | D | A | U | W | R | V
    assert not 0x8000_0000 <= (user.pa or 0) < 0x8020_0000
    satp = vs.registers["satp"]
    assert satp >> 60 == 8 and not 0x8000_0000 <= (satp & (1 << 44) - 1) << 12 < 0x8020_0000


def test_cases_cover_page_boundaries_faults_and_explicit_accesses(tmp_path: Path) -> None:
    vs = _build(SV39_TEXT + "[[access]]\nva = 0x1ff8\naccess = \"read\"\nprivilege = \"user\"\nlabel = \"edge\"\n"
                "[[fault]]\nkind = \"accessed-clear\"\nva = 0x10000\n[generate]\nrandom = 3\n", tmp_path)
    by_label: dict[str, set[int]] = {}
    for c in vs.cases:
        by_label.setdefault(c.label, set()).add(c.va)
    assert by_label["edge"] == {0x1FF8}
    assert by_label["text-boundary"] == {0xFFFF_FFFF_7FFF_FFF8, 0xFFFF_FFFF_8000_0000, 0xFFFF_FFFF_801F_FFF8,
                                         0xFFFF_FFFF_8020_0000}
    assert by_label["map-0x1000-boundary"] == {0xFF8, 0x1000, 0x1FF8, 0x2000, 0x2FF8, 0x3000}
    assert by_label["accessed-clear"] == {0x10000}
    assert len([c for c in vs.cases if c.label == "text-random"]) == 3
    assert [c.reason for c in vs.cases if c.label == "accessed-clear" and c.access == "read"
            and c.privilege == "supervisor"] == ["accessed-dirty"]


def test_x86_memory_type_global_and_huge_page_bits(tmp_path: Path) -> None:
    vs = _build("mode = \"x86_64-4level\"\n[[map]]\nva = 0x40_0000\nsize = \"4K\"\nperms = \"rw\"\nuser = true\n"
                "memtype = \"wc\"\n[[map]]\nva = 0xffff_ffff_8000_0000\npa = 0x100_0000\nsize = \"2M\"\n"
                "perms = \"rx\"\nglobal = true\n", tmp_path)
    w = _walker(vs)
    page = w.translate(0x40_0000, "write", "user")
    assert page.ok and page.memtype.label == "wc"
    assert page.pte == (page.pa or 0) | P | RW | US | XD | pat_index_bits(1, False)    # A, D: the CPU sets them
    big = w.translate(0xFFFF_FFFF_8000_0000, "execute")
    assert big.ok and big.pte & (PS | X86_G | RW | XD) == PS | X86_G and big.pa == 0x100_0000


def test_the_same_spec_gives_the_same_bytes(tmp_path: Path) -> None:
    def digest(out: Path) -> str:
        path = DOCS / "riscv-sv39.toml"
        assert main(["vectors", "build", str(path), "--out", str(out)]) == 0
        return hashlib.sha256((out / "mem.bin").read_bytes() + (out / "vectors.json").read_bytes()).hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_documented_examples_build_and_verify(path: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["vectors", "build", str(path), "--out", str(out), "--formats", "all"]) == 0
    assert main(["vectors", "verify", str(out)]) == 0
    assert "0 disagree" in capsys.readouterr().out
    assert f"built from {path.name} (copied as spec.toml)" in (out / "README.txt").read_text()
    assert (out / "spec.toml").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_fault_kind_at_every_level_in_every_mode(mode: str) -> None:
    """The scene of each mode has every fault kind of its first table (but those needing other registers) at
    every level the kind may sit at, and the cases at each fault end as its kind says."""
    arch = registry.by_mode(mode)
    extensions = {"svnapot": True, "svpbmt": True} if arch.name == "riscv64" and not mode.startswith("sv32") else {}
    doc = scene(mode, extensions)
    vs = build(parse_spec(doc, f"<{mode}>"))
    spec_arch = arch.spec
    assert isinstance(spec_arch, SpecArch)
    sc = spec_arch.scaffold(parse_spec({"mode": mode, "options": extensions}), lambda frames, stage: None)
    first = sc.stage1[0] if sc.stage1 else sc.stage2
    assert first is not None
    rules = {**GENERIC_RULES, **spec_arch.rules(first)}
    two_stage = bool(sc.stage1) and sc.stage2 is not None
    wanted = {(kind, first.fmt.levels[d].arch_level) for kind, rule in rules.items()
              for d in fault_depths(first.fmt, rule)
              if kind not in EXCLUDED and not (kind == "address-size" and mode.endswith(("52", "52-lpa2")))
              and not (kind == "leaf-outside-ram" and two_stage and first.fmt.levels[d].span > 1 << 30)}
    placed = {(f["kind"], f.get("level")) for f in doc["fault"]}
    assert wanted <= placed
    outcomes: dict[str, set[str]] = {}
    for c in vs.cases:
        outcomes.setdefault(c.label, set()).add(c.reason)
    for kind, rule in rules.items():
        reasons = {r.label for r in rule.reasons}
        if two_stage and kind == "table-outside-ram":       # the table's GPA leads stage 2 to no RAM
            reasons.add("pa-outside-memory")
        if kind in outcomes:
            assert outcomes[kind] & reasons, (kind, outcomes[kind])


# --- QEMU agreement ---------------------------------------------------------------------------------------

REQUIRE = {"riscv64": require_qemu, "x86_64": require_qemu_x86, "aarch64": require_qemu_aarch64}


@pytest.mark.parametrize("mode", QEMU_MODES)
def test_every_scene_agrees_with_qemu(mode: str) -> None:
    """The scene of every mode `--qemu` runs, run on QEMU 7.2: every case agrees, or is a named deviation
    (RISC-V: the cases over QEMU virt's devices, a 512 GiB page at PA 0, are not run)."""
    arch = registry.by_mode(mode)
    REQUIRE[arch.name]()
    vs = build(parse_spec(scene(mode), f"<{mode}>"))
    assert qemu_refusal(vs) is None
    report = verify_qemu_set(vs, _walker(vs))
    assert not report.failed and not report.disagree, report.lines(5)
    if arch.name != "aarch64":                       # (AArch64 runs no fetch of a stage 2 set alone)
        not_run = sum(report.deviations[name] for name in (QEMU_DEVICE, FETCH_NO_RAM, QEMU_RV32_WIDE_VA))
        assert sum(report.agree.values()) + not_run == len(vs.cases), report.lines(5)


def test_modes_qemu_lacks_are_refused() -> None:
    for mode in QEMU_LACKS:
        vs = build(parse_spec(scene(mode), f"<{mode}>"))
        assert qemu_refusal(vs) == f"--qemu cannot run x86_64 {mode}: {QEMU_LACKS[mode]}"


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_documented_examples_agree_with_qemu(path: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    vs = build(read_spec(str(path)))
    REQUIRE[vs.arch]()
    assert qemu_refusal(vs) is None
    report = verify_qemu_set(vs, _walker(vs))
    assert not report.failed and not report.disagree, report.lines(5)


def test_a_stage_2_fault_on_the_stage_1_root(tmp_path: Path) -> None:
    """The register overrides put the VS-stage root (RISC-V vsatp) in a guest page the G-stage maps
    execute-only, and TTBR0_EL1's root at an IPA stage 2 does not map: every case faults at stage 2 on the
    implicit read of the root, whatever its VA (AArch64: TTBR0's half only)."""
    riscv = build(read_spec(str(DOCS / "riscv-sv39-gstage-root.toml")))
    assert {(c.fault, c.stage, c.implicit, (c.gpa or 0) & ~0xFFF, c.reason) for c in riscv.cases} == \
        {("guest-page-fault", 2, True, 0x2_0000_0000, "permission")}                  # a root PTE's GPA
    assert {c.syndrome["htinst"] for c in riscv.cases if c.syndrome} == {0x3000}    # the PTE read
    a64 = build(read_spec(str(DOCS / "aarch64-s2-root.toml")))
    ttbr0 = [c for c in a64.cases if c.label == "ttbr0-any-va"]
    assert {(c.fault, c.stage, c.implicit, c.gpa) for c in ttbr0} == {("translation", 2, True, 0x2_0000_0000)}
    assert all(c.syndrome and c.syndrome["esr"] >> 7 & 1 for c in ttbr0)               # ESR_EL2.S1PTW
    assert any(c.pa is not None for c in a64.cases if c.va >> 48 == 0xFFFF)


def test_verify_qemu_of_a_built_riscv_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The documented Sv39 example on QEMU: its UART page is not run (a device answers there)."""
    require_qemu()
    out = tmp_path / "out"
    assert main(["vectors", "build", str(DOCS / "riscv-sv39.toml"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["vectors", "verify", str(out), "--qemu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith(" agree, 0 disagree, 7 named deviations")
    assert any(line.startswith("named deviation (6 cases): not run on QEMU: the PA is in QEMU virt's device space")
               for line in lines)


def test_overlapping_explicit_pas_hold_no_table(tmp_path: Path) -> None:
    """Two mappings sharing PAs: their union is kept free of tables (the root and the tables below sit
    elsewhere); a linear map over most of RAM is not kept free (the tables then sit inside it)."""
    text = ("mode = \"sv39\"\n[[map]]\nva = 0x1000_0000\npa = 0x8000_0000\nsize = \"64K\"\nperms = \"r\"\n"
            "[[map]]\nva = 0x2000_0000\npa = 0x8000_8000\nsize = \"64K\"\nperms = \"r\"\n")
    vs = _build(text, tmp_path)
    tables = {int(t) for t in _walker(vs).mappings().slot} | {(vs.registers["satp"] & (1 << 44) - 1) << 12}
    assert tables and not any(0x8000_0000 <= t < 0x8001_8000 for t in tables)
    linear = _build("mode = \"sv39\"\n[[map]]\nva = 0xffff_ffc0_0000_0000\npa = 0x8000_0000\nsize = \"8M\"\n"
                    "perms = \"rw\"\n", tmp_path, "linear.toml")
    assert (linear.registers["satp"] & (1 << 44) - 1) << 12 == 0x8000_0000


def test_accessed_and_dirty_leaves_for_hardware_updates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`accessed = false` / `dirty = false` clear the leaves' A/D (RISC-V A, D; x86 A, D; AArch64 AF, and
    writable-clean: DBM=1 with AP[2]=1): under Svadu the cases succeed and `--hardware-updates` records the
    writes that set them; under Svade they fault."""
    text = ("mode = \"sv39\"\n[options]\nad = \"svadu\"\n[[map]]\nva = 0x1000\nsize = \"8K\"\nperms = \"rw\"\n"
            "accessed = false\ndirty = false\n[[access]]\nva = 0x1000\naccess = \"write\"\nprivilege = \"supervisor\"\n"
            "[generate]\nboundaries = false\n")
    path = tmp_path / "ad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["vectors", "build", str(path), "--out", str(out), "--hardware-updates"]) == 0
    vs = VectorSet.read(out)
    pte = _walker(vs).translate(0x1000, "read").pte
    assert pte & (A | D) == 0 and vs.cases[0].pa is not None
    after = (out / "mem-after.bin").read_bytes()
    slot = int(_walker(vs).mappings().slot[0]) - 0x8000_0000
    assert int.from_bytes(after[slot:slot + 8], "little") == pte | A | D
    assert "with the 1 entry writes the hardware makes" in (out / "README.txt").read_text()
    svade = _build(text.replace("svadu", "svade"), tmp_path, "svade.toml")
    assert [c.reason for c in svade.cases] == ["accessed-dirty"]
    x86 = _build("mode = \"x86_64-4level\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\naccessed = true\n"
                 "dirty = true\n", tmp_path, "x86.toml")
    assert _walker(x86).translate(0x1000, "read").pte & (1 << 5 | 1 << 6) == 1 << 5 | 1 << 6
    a64 = _build("mode = \"aarch64-4k-48\"\n[[map]]\nva = 0x1000\nsize = \"4K\"\nperms = \"rw\"\ndirty = false\n"
                 "[[map]]\nva = 0x3000\nsize = \"4K\"\nperms = \"rw\"\naccessed = false\n", tmp_path, "a64.toml")
    w = _walker(a64)
    clean, old = w.translate(0x1000, "read"), w.translate(0x3000, "read")
    assert clean.ok and clean.pte & (1 << 51 | 1 << 7) == 1 << 51 | 1 << 7          # DBM, AP[2]
    assert w.translate(0x1000, "write").reason.label == "permission" and old.reason.label == "accessed-dirty"


def test_a_set_written_over_another_replaces_its_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["vectors", "generate", "--mode", "sv48+sv48x4", "--seed", "1", "--out", str(out), "--formats", "all",
                 "--hardware-updates"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["vectors", "build", str(DOCS / "riscv-sv39.toml"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "mem.bin", "notes.txt", "spec.toml", "vectors.json"]


def test_an_aarch64_device_mapping_is_not_run_on_qemu(tmp_path: Path) -> None:
    """QEMU virt's PL011 at PA 0x900_0000: its real accesses are not run (a store would print into the
    harness's output), AT is, and agrees."""
    require_qemu_aarch64()
    vs = _build("mode = \"aarch64-4k-48\"\n[[map]]\nva = 0xffff_8000_1000_0000\npa = 0x900_0000\nsize = \"4K\"\n"
                "perms = \"rw\"\nmemtype = \"device-ngnre\"\n", tmp_path)
    report = verify_qemu_set(vs, _walker(vs))
    assert not report.failed and report.deviations[A64_DEVICE] == 4, report.lines(5)


def test_an_external_abort_after_stage_2_is_taken_to_el1(tmp_path: Path) -> None:
    """AArch64, two stages: a stage 1 page whose IPA stage 2 maps to a PA without memory (the 4 GiB window).
    The access's External abort is no stage 2 fault: EL1 takes it (HCR_EL2.TEA=0), ESR_EL1 EC 0x25 (a Data
    Abort from the same EL), DFSC 0b010000, no S1PTW and no HPFAR."""
    vs = _build("mode = \"aarch64-4k-48+s2-4k-40\"\n[[map]]\nva = 0x1000\npa = 0x1_0000_0000\nsize = \"4K\"\n"
                "perms = \"rw\"\n[[access]]\nva = 0x1000\naccess = \"read\"\nprivilege = \"supervisor\"\n"
                "[generate]\nboundaries = false\n", tmp_path)
    c = vs.cases[0]
    assert (c.fault, c.stage, c.implicit) == ("external-abort", 2, False)
    assert c.syndrome == {"esr": 0x25 << 26 | 1 << 25 | 0b010000, "far": 0x1000, "hpfar": 0, "el": 1}


def test_an_x86_device_mapping_is_not_run_on_qemu(tmp_path: Path) -> None:
    """The LAPIC page (PA 0xFEE0_0000) under a mapping: QEMU's -M pc answers with its registers, so the
    supervisor reads and writes at its two edges are not run (a named deviation: 4 cases); the rest of the
    set is."""
    require_qemu_x86()
    vs = _build("mode = \"x86_64-4level\"\n[[map]]\nva = 0xffff_ffff_fee0_0000\npa = 0xfee0_0000\nsize = \"4K\"\n"
                "perms = \"rw\"\nmemtype = \"uc\"\n[[map]]\nva = 0x40_0000\nsize = \"4K\"\nperms = \"rw\"\n", tmp_path)
    report = verify_qemu_set(vs, _walker(vs))
    assert not report.failed and report.deviations[X86_DEVICE] == 4 and report.agree["ok"] > 0, report.lines(5)
