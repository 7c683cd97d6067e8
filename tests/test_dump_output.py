"""The vectorised text of the dump commands (pagetable/dump/output.py) and translate's use of it: every column
byte for byte what Python's per-value formatting writes; `pagetable translate`'s lines (text and JSON, one
and two stages, faults with syndromes, chunk boundaries) equal to lines formatted one VA at a time from
`Walker.translate`; and the VA file reader (`va_column`) equal to int() on every word, or declining."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagetable.cli import main
from pagetable.cli.dump import _va_file
from pagetable.dump import translate
from pagetable.dump.output import fixed, hexadecimal, lines, named, only, text
from pagetable.dump.translate import va_column
from pagetable.listing import permissions
from pagetable.translation import Translation
from pagetable.vectors import generate_riscv, generate_x86
from pagetable.walker import Walker
from tests.test_cli_translate import command, image, walker

EDGES = sorted({0, 1, 9, 10, 15, 16, 255, 256, *(1 << k for k in range(64)), *((1 << k) - 1 for k in range(1, 65))})


def values() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([np.array(EDGES, dtype=np.uint64), rng.integers(0, 1 << 64, 2000, dtype=np.uint64,
                                                                           endpoint=False)])


def test_hexadecimal_is_pythons_hex() -> None:
    v = values()
    got = lines([hexadecimal(v)], len(v)).splitlines()
    assert got == [f"{x:#x}" for x in v.tolist()]
    assert lines([hexadecimal(v, 16)], len(v)).splitlines() == [f"{x:#018x}" for x in v.tolist()]
    assert lines([hexadecimal(v, prefix=False)], len(v)).splitlines() == [f"{x:x}" for x in v.tolist()]
    assert lines([hexadecimal(v, 16, prefix=False)], len(v)).splitlines() == [f"{x:016x}" for x in v.tolist()]
    small = v[v < 1 << 20]
    assert lines([hexadecimal(small, 5)], len(small)).splitlines() == [f"{x:#07x}" for x in small.tolist()]
    same = np.array([0x10, 0x20, 0xFF], dtype=np.uint64)        # one width: said once
    assert hexadecimal(same).lengths.tolist() == [4]
    assert lines([hexadecimal(same)], 3) == "0x10\n0x20\n0xff\n"
    assert lines([hexadecimal(same, prefix=False), fixed(np.frombuffer(b"abc", dtype=np.uint8).reshape(3, 1))],
                 3) == "10a\n20b\nffc\n"
    with pytest.raises(ValueError, match="17 hex digits"):
        hexadecimal(same, 17)
    with pytest.raises(ValueError, match="0xff has more than 1 hex digits"):
        hexadecimal(same, 1)


def test_named_only_and_lines_join_the_pieces_of_each_lane() -> None:
    codes = np.array([3, 0, 7, 3, 300, 0], dtype=np.int64)
    keep = np.array([True, False, True, True, True, False])
    out = lines([text("<"), named(codes, lambda k: "x" * (k % 5)), text("|"), named(codes, str, keep),
                 only(~keep, text(" left out")), text(">")], 6)
    assert out == "<xxx|3>\n<| left out>\n<xx|7>\n<xxx|3>\n<|300>\n<| left out>\n"
    far = np.array([-5, 1 << 40, -5], dtype=np.int64)          # spread out: sorted, not looked up
    assert lines([named(far, str)], 3) == f"-5\n{1 << 40}\n-5\n"
    assert lines([named(codes, str, np.zeros(6, dtype=bool)), text(".")], 6) == ".\n" * 6
    assert lines([text("a")], 0) == ""


def test_va_column_reads_hex_words_as_int_does() -> None:
    rng = np.random.default_rng(3)
    v = values()
    words = [f"{x:#x}" for x in v.tolist()] + [f"{x:#018X}".replace("0X", "0x") for x in v[:50].tolist()]
    seps = rng.choice([" ", "\n", "\t", "\r\n", "  \n", "\f", "\v"], len(words))
    data = ("  " + "".join(w + s for w, s in zip(words, seps, strict=True))).encode()
    got = va_column(data)
    assert got is not None and got.tolist() == [int(w, 16) for w in words]
    even = "".join(f"{x:#018x}\n" for x in v.tolist()).encode()     # one width, evenly spaced: read in place
    got = va_column(even)
    assert got is not None and got.tolist() == v.tolist()
    assert va_column(b"0X1F") is not None and va_column(b"0X1F").tolist() == [0x1F]   # type: ignore[union-attr]
    assert va_column(b"") is not None and va_column(b" \n").tolist() == []            # type: ignore[union-attr]
    for bad in (b"12", b"0x", b"0x1 0xg", b"0x1 # c", b"0x1_0", b"0o7", b"0x" + b"1" * 17, b"0x1\xc3\xa9",
                b"-0x1", b"0x1\x1c0x2"):
        assert va_column(bad) is None, bad


WORDS = st.one_of(st.integers(0, (1 << 64) - 1).map(hex), st.integers(0, 1 << 70).map(str),
                  st.text("0xX19afAF_g#-+ ", min_size=1, max_size=20), st.sampled_from(["0x", "0X0", "0x" + "f" * 17]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(WORDS, st.sampled_from([" ", "\n", "\t", "\r\n", "\x1c", "\u00e9"])), max_size=12))
def test_va_column_is_int_or_declines(words: list[tuple[str, str]]) -> None:
    """Random words: numpy reads exactly the files whose words (split at ASCII whitespace) are all "0x" and
    1 to 16 hex digits, as int() does; the command's reading (`_va_file`, which falls back to reading the
    file line by line) gives the same numbers."""
    text = "".join(w + sep for w, sep in words)
    split = [w for w in re.split("[ \t\n\r\v\f]+", text) if w]
    usual = all(re.fullmatch("0[xX][0-9a-fA-F]{1,16}", w) for w in split)
    got = va_column(text.encode())
    assert (got is not None) == usual
    if got is not None:
        assert got.tolist() == [int(w, 16) for w in split]
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "vas").write_text(text)
            assert _va_file(str(Path(d) / "vas")).tolist() == got.tolist()


def reference(t: Translation, two_stage: bool) -> tuple[str, dict[str, object]]:
    """The documented text and JSON of one translation, formatted the plain way."""
    via = f" gpa {t.gpa or 0:#x}" if two_stage else ""
    doc: dict[str, object] = {"va": f"{t.va:#x}"}
    if t.ok:
        line = f"{t.va:#018x} -> {t.pa:#x}{via}  {permissions(t.perms)}  {t.memtype.label}  (level {t.level})"
        doc |= {"pa": f"{t.pa:#x}", "fault": None, "reason": "ok", "level": t.level, "stage": t.stage,
                "perms": permissions(t.perms), "memtype": t.memtype.label, "syndrome": {}}
    else:
        assert t.fault is not None
        regs = "".join(f" {k}={v:#x}" for k, v in t.syndrome.items())
        line = f"{t.va:#018x} -> {t.fault.value} ({t.reason.label}) at level {t.level} stage {t.stage}{via}{regs}"
        doc |= {"pa": None, "fault": t.fault.value, "reason": t.reason.label, "level": t.level, "stage": t.stage,
                "perms": None, "memtype": None, "syndrome": {k: f"{v:#x}" for k, v in t.syndrome.items()}}
    if two_stage:
        doc["gpa"] = f"{t.gpa or 0:#x}"
    return line, doc


@pytest.mark.parametrize("mode", ["sv39+sv39x4", "x86_64-4level"])
def test_translate_lines_are_the_plain_formatting_across_chunks(mode: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    vs = (generate_riscv if mode.startswith("sv") else generate_x86)(mode, 3, None)
    w: Walker = walker(vs)
    vas = sorted({c.va for c in vs.cases})[:300]
    (tmp_path / "vas").write_text("".join(f"{va:#x}\n" for va in vas))
    monkeypatch.setattr(translate, "CHUNK", 7)               # many chunks, some all faults or all translations
    images = image(vs, "raw", tmp_path)
    expected = [reference(w.translate(va, "write", "user"), w.stage2 is not None) for va in vas]
    assert 0 < sum(d["fault"] is None for _, d in expected) < len(vas)
    for json_flag in ([], ["--json"]):
        assert main(command(vs, images, "--access", "write", "--privilege", "user", "--va-file",
                            str(tmp_path / "vas"), *json_flag)) == 0
        out = capsys.readouterr().out
        assert out.endswith("\n")
        got = out.splitlines()
        if json_flag:
            assert [json.loads(line) for line in got] == [d for _, d in expected]
            assert all(json.dumps(json.loads(line)) == line for line in got)    # the spacing json.dumps has
        else:
            assert got == [line for line, _ in expected]
