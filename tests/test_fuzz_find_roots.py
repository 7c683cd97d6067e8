"""Fuzz `pagetable find-roots` and `--root auto` with adversarial images and arguments: frames of random
entries that point back into RAM (cycles, self-maps, tables reused at every level), outside it, and at
every reserved encoding, for each architecture; truncated and garbage files; junk registers, --top and
--pa-bits. The property: exit 0, 1 (no candidate) or 2 with one line `pagetable: error: ...`; never a
traceback, a hang, or memory beyond a small multiple of the image."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pagetable.cli import main

from .fuzzing import bounded, count, fuzz

RAM = {"x86_64": 0x10_0000, "riscv": 0x8000_0000, "aarch64": 0x4000_0000}
FRAMES = 64
LIMIT = 32 << 20                  # per example: a few times the 256 KiB image


def run(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    assert rc in (0, 1, 2), (argv, rc, err.getvalue())
    if rc == 2:
        message = err.getvalue()
        assert message.startswith("pagetable: error: ") and message.count("\n") == 1, message
    if rc == 1:
        assert err.getvalue().startswith("pagetable: note: no "), err.getvalue()
    return rc


@st.composite
def entries(draw: st.DrawFn, base: int) -> int:
    """An entry an adversary writes: a pointer to a frame of the image (with random low bits: valid,
    table/leaf, permissions, reserved), random bits above, or anything."""
    frame = base + draw(st.integers(0, FRAMES + 2)) * 4096           # the last ones beyond RAM
    low = draw(st.integers(0, 0xFFF))
    high = draw(st.sampled_from([0, 0, 0, 1 << 63, 1 << 52, 0xFFF0 << 48, 1 << 58]))
    shifted = draw(st.booleans())            # RISC-V's PPN sits at bit 10
    value = (frame >> 2 if shifted else frame) | low | high
    return draw(st.one_of(st.just(value), st.integers(0, (1 << 64) - 1)))


@st.composite
def images(draw: st.DrawFn) -> tuple[str, bytes]:
    arch = draw(st.sampled_from(list(RAM)))
    words = np.zeros(FRAMES * 512, dtype=np.uint64)
    for _ in range(draw(st.integers(0, 60))):
        slot = draw(st.integers(0, words.size - 1))
        words[slot] = draw(entries(RAM[arch]))
    if draw(st.booleans()):                  # a frame of random words
        frame = draw(st.integers(0, FRAMES - 1))
        words[frame * 512:(frame + 1) * 512] = np.random.default_rng(draw(st.integers(0, 99))).integers(
            0, 1 << 64, 512, dtype=np.uint64)
    return arch, words.tobytes()


REGISTERS = {"x86_64": ["cr0=0x80010001", "cr4=0x20", "cr4=0x1020", "cr4=0x0", "efer=0xd01", "efer=0x0",
                        "cr3=0x1000", "pat=0x7", "rflags=0x40000"],
             "riscv": ["satp=0x8000000000000000", "satp=0x9000000000000000", "satp=0xa000000000000000",
                       "satp=0xf000000000000000", "satp=0", "hgatp=0x8000000000000000", "vsatp=0"],
             "aarch64": ["tcr_el1=0x5b5103510", "tcr_el1=0x5b5104010", "tcr_el1=0xffffffffffffffff",
                         "ttbr0_el1=0x40000000", "mair_el1=0xff", "vtcr_el2=0x0", "sctlr_el1=0x0"]}
JUNK_REGS = ["", "=", "x=1", "cr3", "satp=zz", "tcr_el1=-1", "cr4=0x" + "f" * 20]


@fuzz(40, 400)
@given(images(), st.data())
def test_find_roots_never_crashes(image: tuple[str, bytes], data: st.DataObject) -> None:
    arch, raw = image
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ram.bin"
        path.write_bytes(raw[:data.draw(st.sampled_from([len(raw), len(raw), len(raw) - 8, 4096, 7, 0]))])
        spec = f"{path}@{data.draw(st.sampled_from([RAM[arch], RAM[arch], 0, 0x1001, 1 << 64]))}"
        regs = data.draw(st.lists(st.sampled_from(REGISTERS[arch] + JUNK_REGS), max_size=3))
        extra = [a for r in regs for a in ("--reg", r)]
        extra += data.draw(st.sampled_from([[], ["--top", "1"], ["--top", "0"], ["--top", "-3"], ["--json"],
                                            ["--pa-bits", "40"], ["--pa-bits", "99"]]))
        count("find-roots")
        with bounded(30, LIMIT):
            run(["find-roots", spec, "--arch", arch, *extra])
        count("translate --root auto")
        with bounded(30, LIMIT):
            run(["translate", spec, "--arch", arch, "--root", "auto", *extra[:4], "0x0", "0xffffffff80000000"])


def test_garbage_files(tmp_path: Path) -> None:
    """Files that are not images (an ELF header alone, LiME magic alone, nothing) are refused as images."""
    for name, raw in (("elf", b"\x7fELF\x02\x01\x01" + bytes(9)), ("lime", b"EMiL" + bytes(4)), ("empty", b"")):
        (tmp_path / name).write_bytes(raw)
        assert run(["find-roots", str(tmp_path / name), "--arch", "riscv"]) == 2
