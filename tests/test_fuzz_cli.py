"""Fuzz the command line with what users and attackers hand it: mutated vectors.json documents (structure and
raw bytes), corrupted memory images (cyclic, self-mapping and out-of-RAM tables, every reserved encoding,
truncation), random values for `explain`, and random `generate` arguments.

The property, for every input: `pagetable` answers (exit 0, or 1 from `check` when a case disagrees) or
refuses with one line on stderr and exit 2; never a traceback (an exception escaping `main`), a hang, or
memory beyond a small multiple of the input."""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pagetable import registry
from pagetable.arch.riscv_sv39 import HGATP, PTE, SATP
from pagetable.cli import main
from pagetable.vectors import VectorSet, generate_aarch64, generate_riscv
from pagetable.vectors.aarch64 import gen as a64_gen
from pagetable.vectors.aarch64.tool import REGISTERS as A64_REGISTERS
from pagetable.vectors.x86_64 import layout as x86_layout
from pagetable.vectors.x86_64.gen import generate_x86
from pagetable.vectors.x86_64.tool import LAYOUTS as X86_LAYOUTS

from .fuzzing import JUNK, bounded, count, fuzz, table_entries

MODES = ("sv39", "sv48+sv48x4", "sv39x4")
X86_MODES = ("x86_64-4level", "x86_64-5level")
A64_MODES = ("aarch64-4k-48", "aarch64-64k-52", "aarch64-4k-48+s2-4k-40")
RAM = 0x8000_0000
IMAGE_LIMIT = 96 << 20        # per example: a few times the 8-16 MiB image, which is memory-mapped


@functools.cache
def base(mode: str) -> tuple[Path, dict[str, Any], bytes]:
    """A small vector set of `mode`: its directory, its vectors.json and its image."""
    d = Path(tempfile.mkdtemp(prefix=f"fuzz-{mode.replace('+', '-')}-"))
    atexit.register(shutil.rmtree, d, True)
    generate = generate_x86 if mode in X86_MODES else generate_aarch64 if mode in A64_MODES else generate_riscv
    generate(mode, 5, cases=12).write(d, "")
    return d, json.loads((d / "vectors.json").read_text()), (d / "mem.bin").read_bytes()


def run(argv: list[str], codes: tuple[int, ...] = (0, 1, 2)) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    assert rc in codes, (argv, rc, err.getvalue())
    if rc == 2:
        message = err.getvalue()
        assert message.startswith("pagetable: error: ") and message.count("\n") == 1, message
    return rc


def show_and_check(d: Path, entry: str) -> None:
    for action in ("show", "check"):
        count(f"vectors {action} ({entry})")
        with bounded(30, IMAGE_LIMIT):
            run(["vectors", action, str(d)])


@contextlib.contextmanager
def vector_dir(mode: str) -> Any:
    """A fresh directory holding `mode`'s image (a hard link: the examples that change it write a copy)."""
    src, _, _ = base(mode)
    d = Path(tempfile.mkdtemp(prefix="fuzz-case-"))
    try:
        (d / "mem.bin").hardlink_to(src / "mem.bin")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------------- vectors.json
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(1 << 80), 1 << 80), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["0x0", "0x80000000", "0x", "0xg", "-0x1", "0x" + "f" * 20,
                                                     "read", "supervisor", "page-fault", "mem.bin", "", ".",
                                                     "..", "/etc/passwd", "mem.bin/", "sv39", "riscv64"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:4]):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn, modes: tuple[str, ...] = MODES) -> tuple[str, Any]:
    mode = draw(st.sampled_from(modes))
    doc: Any = copy.deepcopy(base(mode)[1])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if not path:
            doc = draw(JSON_VALUES) if action == "replace" else doc
            continue
        key = path[-1]
        if action == "replace":
            parent[key] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=6))] = draw(JSON_VALUES)
        elif isinstance(parent[key], list) and parent[key]:
            parent[key].append(copy.deepcopy(parent[key][0]))
    return mode, doc


@fuzz(short=60, long=5_000)
@given(mutated_documents())
def test_mutated_vector_documents(case: tuple[str, Any]) -> None:
    mode, doc = case
    with vector_dir(mode) as d:
        (d / "vectors.json").write_text(json.dumps(doc))
        show_and_check(d, "mutated JSON structure")


@fuzz(short=40, long=4_000)
@given(st.sampled_from(MODES),
       st.lists(st.tuples(st.integers(0, 1 << 20), st.sampled_from(["set", "del", "ins", "cut"]),
                          st.binary(min_size=1, max_size=4)), min_size=1, max_size=6))
def test_vector_documents_with_random_bytes(mode: str, edits: list[tuple[int, str, bytes]]) -> None:
    text = bytearray(json.dumps(base(mode)[1]).encode())
    for pos, action, data in edits:
        at = pos % (len(text) + 1)
        if action == "set":
            text[at:at + len(data)] = data
        elif action == "del":
            del text[at:at + len(data)]
        elif action == "ins":
            text[at:at] = data
        else:
            del text[at:]
    with vector_dir(mode) as d:
        (d / "vectors.json").write_bytes(bytes(text))
        show_and_check(d, "random bytes in JSON")


@fuzz(short=40, long=4_000)
@given(mutated_documents(X86_MODES))
def test_mutated_x86_vector_documents(case: tuple[str, Any]) -> None:
    _check_document(*case, "mutated x86 JSON structure")


def _check_document(mode: str, doc: Any, entry: str) -> None:
    """`show` and `check` of `mode`'s small set with vectors.json replaced by `doc`."""
    with vector_dir(mode) as d:
        (d / "vectors.json").write_text(json.dumps(doc))
        show_and_check(d, entry)


# ------------------------------------------------------------------------------------------- memory images
@fuzz(short=60, long=5_000)
@given(st.sampled_from(MODES), st.data())
def test_corrupted_memory_images(mode: str, data: st.DataObject) -> None:
    """Tables live in the first frames of the image (the generators allocate from the bottom)."""
    _, doc, image = base(mode)
    mem = bytearray(image)
    entries = st.tuples(st.integers(0, 96 * 512 - 1), table_entries(RAM, 128))
    words = data.draw(st.lists(entries, min_size=1, max_size=64))
    for index, value in words:
        mem[index * 8:index * 8 + 8] = value.to_bytes(8, "little")
    if data.draw(st.integers(0, 20)) == 0:                         # sometimes truncated, or empty
        mem = mem[:data.draw(st.integers(0, len(mem)))]
    with vector_dir(mode) as d:
        (d / "mem.bin").unlink()
        (d / "mem.bin").write_bytes(bytes(mem))
        (d / "vectors.json").write_text(json.dumps(doc))
        show_and_check(d, "corrupted image")


def _entries(ram: int, frames: int) -> st.SearchStrategy[int]:
    """Entries into the first `frames` 4 KiB frames of RAM at `ram` (the first tables; any low and high
    attribute bits), anywhere, anything."""
    return st.one_of(
        st.tuples(st.integers(0, frames - 1), st.integers(0, 0xFFF), st.integers(0, 0xFFF)).map(
            lambda t: t[2] << 52 | (ram + t[0] * 4096) | t[1]),
        st.tuples(st.integers(0, (1 << 40) - 1), st.integers(0, 0xFFF)).map(lambda t: t[0] << 12 | t[1]),
        st.integers(0, (1 << 64) - 1), st.just(0))


X86_ENTRIES = _entries(x86_layout.RAM_BASE, 128)     # x86 entries
A64_ENTRIES = _entries(a64_gen.RAM_BASE, 256)        # VMSAv8-64 descriptors of any type


@fuzz(short=40, long=4_000)
@given(st.sampled_from(X86_MODES), st.lists(st.tuples(st.integers(0, 96 * 512 - 1), X86_ENTRIES), min_size=1,
                                            max_size=64))
def test_corrupted_x86_memory_images(mode: str, words: list[tuple[int, int]]) -> None:
    """Cycles, self-maps, tables outside RAM and every flag in the x86 tables (the first frames)."""
    _check_corrupted(mode, words, "corrupted x86 image")


def _check_corrupted(mode: str, words: list[tuple[int, int]], entry: str) -> None:
    """`show` and `check` of `mode`'s small set with the image's u64 at each index of `words` replaced."""
    _, doc, image = base(mode)
    mem = bytearray(image)
    for index, value in words:
        mem[index * 8:index * 8 + 8] = value.to_bytes(8, "little")
    with vector_dir(mode) as d:
        (d / "mem.bin").unlink()
        (d / "mem.bin").write_bytes(bytes(mem))
        (d / "vectors.json").write_text(json.dumps(doc))
        show_and_check(d, entry)


@fuzz(short=20, long=3_000)
@given(mutated_documents(A64_MODES))
def test_mutated_aarch64_vector_documents(case: tuple[str, Any]) -> None:
    _check_document(*case, "mutated AArch64 JSON structure")


@fuzz(short=20, long=3_000)
@given(st.sampled_from(A64_MODES), st.lists(st.tuples(st.integers(0, 96 * 512 - 1), A64_ENTRIES), min_size=1,
                                            max_size=64))
def test_corrupted_aarch64_memory_images(mode: str, words: list[tuple[int, int]]) -> None:
    """Cycles, blocks and tables anywhere, every attribute bit in the AArch64 tables (the first frames)."""
    _check_corrupted(mode, words, "corrupted AArch64 image")


def test_a_root_table_of_self_pointers_in_every_mode() -> None:
    """The adversarial classic, for certain in every run: every root entry points at the root."""
    for mode in MODES:
        _, doc, image = base(mode)
        root = (int(doc["registers"].get("satp", doc["registers"].get("hgatp")), 16) & ((1 << 44) - 1)) << 12
        mem = bytearray(image)
        at = root - RAM
        size = 4 * 4096 if "satp" not in doc["registers"] else 4096
        mem[at:at + size] = (root >> 12 << 10 | 1).to_bytes(8, "little") * (size // 8)
        with vector_dir(mode) as d:
            (d / "mem.bin").unlink()
            (d / "mem.bin").write_bytes(bytes(mem))
            (d / "vectors.json").write_text(json.dumps(doc))
            show_and_check(d, "self-referencing root")


# ------------------------------------------------------------------------------------------------ explain
@fuzz(short=100, long=36_000)
@given(st.sampled_from(["pte", "satp", "vsatp", "hgatp"]),
       st.one_of(st.integers(0, (1 << 64) - 1), st.integers(-(1 << 70), 1 << 70),
                 st.sampled_from([-1, 1 << 64, (1 << 64) - 1, 0xF << 60, 15 << 60 | 1])),
       st.sampled_from(["{:#x}", "{:d}", "{:#o}", "{:#b}"]))
def test_explain_every_register_and_entry(register: str, value: int, form: str) -> None:
    count(f"explain --register {register}")
    text = form.format(value)
    with bounded(10, 16 << 20):
        rc = run(["explain", "--register", register, text], (0, 2))
    assert rc == (0 if 0 <= value < 1 << 64 else 2)
    if rc == 0:
        layout = {"pte": PTE, "hgatp": HGATP}.get(register, SATP)
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            main(["explain", "--register", register, text])
        assert all(f" {f.name} " in shown.getvalue() for f in layout.fields)


@fuzz(short=60, long=10_000)
@given(st.sampled_from(["pte", *X86_LAYOUTS]),
       st.one_of(st.integers(0, (1 << 64) - 1), st.integers(-(1 << 70), 1 << 70),
                 st.sampled_from([-1, 1 << 32, 1 << 64, (1 << 64) - 1, 0x0207040600070406])))
def test_explain_every_x86_register_and_entry(register: str, value: int) -> None:
    count(f"explain --arch x86_64 --register {register}")
    with bounded(10, 16 << 20):
        rc = run(["explain", "--arch", "x86_64", "--register", register, hex(value)], (0, 2))
    width = 32 if register in ("pkru", "pte32", "cr3_32", "cr3_pae") else 64
    assert rc == (0 if 0 <= value < 1 << width else 2)


@fuzz(short=60, long=10_000)
@given(st.sampled_from(A64_REGISTERS),
       st.one_of(st.integers(0, (1 << 64) - 1), st.integers(-(1 << 70), 1 << 70),
                 st.sampled_from([-1, 1 << 64, (1 << 64) - 1, 0xFF << 56 | 3, 0x40000000000701, 3 << 14 | 3 << 30])))
def test_explain_every_aarch64_register_and_descriptor(register: str, value: int) -> None:
    count(f"explain --arch aarch64 --register {register}")
    with bounded(10, 16 << 20):
        rc = run(["explain", "--arch", "aarch64", "--register", register, hex(value)], (0, 2))
    assert rc == (0 if 0 <= value < 1 << 64 else 2)


@fuzz(short=50, long=5_000)
@given(st.lists(st.one_of(JUNK.map(str), st.sampled_from(["0x10", "-0x1", "1e3", "", "  7", "0b101", "--", "-"])),
                min_size=1, max_size=3))
def test_explain_with_junk_arguments(words: list[str]) -> None:
    count("explain (junk arguments)")
    with bounded(10, 16 << 20):
        try:
            run(["explain", *words], (0, 2))
        except SystemExit as exc:                     # argparse: usage and exit status 2
            assert exc.code == 2


# ----------------------------------------------------------------------------------------------- generate
CASE_COUNTS = st.one_of(st.integers(-5, 300).map(str), st.sampled_from(["-1", "0", "1", "100000000", "0x40", "x", ""]))
SEEDS = st.one_of(st.integers(-(1 << 70), 1 << 70).map(str), st.sampled_from(["0x10", "-1", "seed"]))


@fuzz(short=6, long=300)
@given(st.sampled_from(["sv39", "sv48", "sv39x4", "sv39+sv39x4"]), CASE_COUNTS, SEEDS,
       st.sets(st.sampled_from(["--sum", "--mxr", "--hs-mxr", "--svnapot", "--svpbmt"])))
def test_generate_with_random_arguments(mode: str, cases: str, seed: str, flags: set[str]) -> None:
    count("vectors generate")
    generate_then_check(mode, cases, seed, flags)


def generate_then_check(mode: str, cases: str, seed: str, flags: set[str]) -> None:
    """`vectors generate` with these arguments answers or refuses in one line; what it writes checks."""
    d = Path(tempfile.mkdtemp(prefix="fuzz-gen-"))
    try:
        with bounded(60, 256 << 20):
            try:
                rc = run(["vectors", "generate", "--mode", mode, "--seed", seed, "--out", str(d / "v"),
                          "--cases", cases, *sorted(flags)], (0, 2))
            except SystemExit as exc:                 # argparse refuses a number it cannot parse
                assert exc.code == 2
                return
        if rc == 0:
            assert not flags & {"--sum", "--svnapot"} or mode not in X86_MODES   # RISC-V options are refused
            run(["vectors", "check", str(d / "v")], (0,))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@fuzz(short=4, long=200)
@given(st.sampled_from(X86_MODES), CASE_COUNTS, SEEDS,
       st.sets(st.sampled_from(["--ac", "--no-nxe", "--no-wp", "--sum", "--svnapot"])))
def test_generate_x86_with_random_arguments(mode: str, cases: str, seed: str, flags: set[str]) -> None:
    count("vectors generate (x86)")
    generate_then_check(mode, cases, seed, flags)


# ------------------------------------------------------------------------------------------------ translate
_CLI_ARCH = {"riscv64": "riscv", "x86_64": "x86_64", "aarch64": "aarch64"}


def mutated(mode: str, data: st.DataObject, changes: int) -> tuple[Path, registry.Architecture, int, dict[str, int],
                                                                     bytearray]:
    """A vector set of `mode` made hostile for the dump commands: its directory, architecture, RAM base, its
    registers with up to `changes` changed, dropped, added or misnamed, and its image with up to 16 words of
    the tables overwritten."""
    d, doc, image = base(mode)
    ram = VectorSet.read(d).mem.regions[0].base
    arch = registry.by_name(doc["arch"])
    regs = {k: int(v, 16) for k, v in doc["registers"].items()}
    for _ in range(data.draw(st.integers(0, changes))):
        name = data.draw(st.sampled_from([*arch.register_names, "bogus", *regs]))
        if data.draw(st.booleans()) and name in regs:
            del regs[name]
        else:
            regs[name] = data.draw(st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, 1 << 63])))
    mem = bytearray(image)
    for index, value in data.draw(st.lists(st.tuples(st.integers(0, 96 * 512 - 1), st.integers(0, (1 << 64) - 1)),
                                           max_size=16)):
        mem[index * 8:index * 8 + 8] = value.to_bytes(8, "little")
    return d, arch, ram, regs, mem


@fuzz(short=30, long=3_000)
@given(st.sampled_from(MODES + X86_MODES + A64_MODES), st.data())
def test_translate_with_mutated_registers_images_and_vas(mode: str, data: st.DataObject) -> None:
    """`translate` over a vector set's image, its tables corrupted, with registers changed, dropped, added
    or misnamed, and VAs of every size (and not numbers)."""
    d, arch, ram, regs, mem = mutated(mode, data, 3)
    vas = data.draw(st.lists(st.one_of(st.integers(0, (1 << 64) - 1).map(hex), st.integers(-5, 1 << 65).map(str),
                                       st.text("0x123abcz_-", min_size=1, max_size=6)), min_size=1, max_size=8))
    extra = data.draw(st.sampled_from([[], ["--json"], ["--access", "any", "--privilege", "user"],
                                       ["--access", "write", "--pa-bits", "40"], ["--pa-bits", "9999"]]))
    with vector_dir(mode) as t:
        (t / "mem.bin").unlink()
        (t / "mem.bin").write_bytes(bytes(mem))
        count("translate")
        with bounded(30, IMAGE_LIMIT):
            run(["translate", f"{t / 'mem.bin'}@{ram:#x}", "--arch", _CLI_ARCH[arch.name],
                 *(f"--reg={k}={v:#x}" for k, v in regs.items()), *extra, "--", *vas] if regs else
                ["translate", f"{t / 'mem.bin'}@{ram:#x}", "--arch", _CLI_ARCH[arch.name], "--regs",
                 str(d / "none.json"), *vas], codes=(0, 2))
