"""Fuzz `pagetable diff` and `pagetable plot` with what users hand them: vector sets' images with their tables
corrupted (two different corruptions for the two sides of a diff), registers changed, dropped or added for
the second side, random `--range` values and output names.

The property, for every input: the command answers (diff: exit 0 or 1; plot: exit 0 and a file written) or
refuses with one line on stderr and exit 2; never a traceback, a hang, or memory beyond a small multiple of
the image."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pagetable import registry
from pagetable.vectors import VectorSet

from .fuzzing import bounded, count, fuzz
from .test_fuzz_cli import _CLI_ARCH, A64_MODES, IMAGE_LIMIT, MODES, X86_MODES, base, run, vector_dir

RANGES = st.one_of(st.none(), st.tuples(st.integers(0, 1 << 64), st.integers(0, 1 << 64)).map(
    lambda t: f"{t[0] & ~0xFFF:#x}-{t[1] & ~0xFFF:#x}"), st.sampled_from(["0x0-0x1000", "1-2", "-", "0x1000", "zz-0",
                                                                           "0xffff800000000000-0x10000000000000000"]))


def corrupt(image: bytes, data: st.DataObject) -> bytes:
    """`image` with up to 16 of its first 96 tables' entries overwritten with anything."""
    mem = bytearray(image)
    for index, value in data.draw(st.lists(st.tuples(st.integers(0, 96 * 512 - 1), st.integers(0, (1 << 64) - 1)),
                                           max_size=16)):
        mem[index * 8:index * 8 + 8] = value.to_bytes(8, "little")
    return bytes(mem)


def target(mode: str) -> tuple[int, str, dict[str, int]]:
    """The RAM base, --arch name and registers of `mode`'s small vector set."""
    d, doc, _ = base(mode)
    ram = VectorSet.read(d).mem.regions[0].base
    return ram, _CLI_ARCH[registry.by_name(doc["arch"]).name], {k: int(v, 16) for k, v in doc["registers"].items()}


@fuzz(short=12, long=2_000)
@given(st.sampled_from(MODES + X86_MODES + A64_MODES), st.data())
def test_diff_of_corrupted_images_and_registers(mode: str, data: st.DataObject) -> None:
    _, _, image = base(mode)
    ram, arch, regs = target(mode)
    names = [*registry.by_name(base(mode)[1]["arch"]).register_names, "bogus"]
    other = data.draw(st.dictionaries(st.sampled_from(names), st.one_of(
        st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, 1 << 63, *regs.values()])), max_size=2))
    second = data.draw(st.booleans()) or not other
    options = data.draw(st.lists(st.sampled_from(["--json", "--by-entry"]), unique=True))
    span = data.draw(RANGES)
    with vector_dir(mode) as a, vector_dir(mode) as b:
        for d in (a, b):
            (d / "mem.bin").unlink()
            (d / "mem.bin").write_bytes(corrupt(image, data))
        argv = ["diff", f"{a / 'mem.bin'}@{ram:#x}", "--arch", arch, *(f"--reg={k}={v:#x}" for k, v in regs.items()),
                *(["--image2", f"{b / 'mem.bin'}@{ram:#x}"] if second else []),
                *(f"--other-reg={k}={v:#x}" for k, v in other.items()), *options,
                *(["--range", span] if span is not None else [])]
        count("diff")
        with bounded(30, IMAGE_LIMIT):
            run(argv, codes=(0, 1, 2))


@fuzz(short=2, long=200)
@given(st.sampled_from(MODES + X86_MODES + A64_MODES), st.data())
def test_plot_of_corrupted_images(mode: str, data: st.DataObject) -> None:
    import matplotlib.figure  # noqa: F401  (imported once, outside the memory bound)

    _, _, image = base(mode)
    ram, arch, regs = target(mode)
    out = data.draw(st.sampled_from(["map.png", "map.svg", "map.pdf", "map.jpg", "map", "dir/map.png"]))
    span = data.draw(RANGES)
    with vector_dir(mode) as d:
        (d / "mem.bin").unlink()
        (d / "mem.bin").write_bytes(corrupt(image, data))
        argv = ["plot", f"{d / 'mem.bin'}@{ram:#x}", "--arch", arch, *(f"--reg={k}={v:#x}" for k, v in regs.items()),
                "--out", str(d / out), *(["--range", span] if span is not None else [])]
        count("plot")
        with bounded(60, IMAGE_LIMIT):
            rc = run(argv, codes=(0, 2))
        assert (rc == 0) == Path(d / out).exists(), (argv, rc)
