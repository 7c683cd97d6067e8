"""The vector generator, the pagetable-vectors/1 reader/writer and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pagetable.arch.riscv_sv39.walk import RiscvOptions
from pagetable.cli import main
from pagetable.vectors import SCHEMA, VectorsError, VectorSet, generate_riscv
from pagetable.vectors.riscv_gen import RAM_BASE, RAM_SIZE


@pytest.mark.parametrize("mode", ["sv39", "sv48", "sv57"])
def test_same_seed_same_bytes(mode: str, tmp_path: Path) -> None:
    for n in (1, 2):
        generate_riscv(mode, 7).write(tmp_path / str(n), "readme\n")
    assert (tmp_path / "1" / "mem.bin").read_bytes() == (tmp_path / "2" / "mem.bin").read_bytes()
    assert (tmp_path / "1" / "vectors.json").read_text() == (tmp_path / "2" / "vectors.json").read_text()
    other = generate_riscv(mode, 8)
    assert other.mem.regions[0].data.tobytes() != (tmp_path / "1" / "mem.bin").read_bytes()


def test_write_read_round_trip(tmp_path: Path) -> None:
    vs = generate_riscv("sv48", 3, cases=50, options=RiscvOptions(sum=True, ad="svadu"))
    vs.write(tmp_path, "x\n")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    assert doc["schema"] == SCHEMA and doc["arch"] == "riscv64" and doc["mode"] == "sv48"
    assert doc["memory"] == [{"file": "mem.bin", "base": "0x80000000"}]
    assert doc["options"] == {"sum": True, "mxr": False, "ad": "svadu", "svnapot": False, "svpbmt": False,
                              "seed": 3}
    assert doc["registers"]["satp"].startswith("0x9")                 # MODE 9 = Sv48
    assert all(isinstance(c["va"], str) and c["va"].startswith("0x") for c in doc["cases"])
    back = VectorSet.read(tmp_path)
    assert back.cases == vs.cases and back.registers == vs.registers
    assert back.mem.regions[0].base == RAM_BASE and back.mem.regions[0].size == RAM_SIZE
    assert np.array_equal(back.mem.regions[0].data, vs.mem.regions[0].data)
    assert len(back.cases) == 50


def test_cases_cover_every_rule_and_extend() -> None:
    vs = generate_riscv("sv39", 5, options=RiscvOptions(svnapot=True, svpbmt=True))
    reasons = {c.reason for c in vs.cases}
    assert reasons == {"ok", "non-canonical", "table-outside-memory", "invalid", "w-without-r", "reserved",
                       "non-leaf-at-last-level", "permission", "misaligned-superpage", "accessed-dirty",
                       "pa-outside-memory"}
    napot = [(c.va, c.pa) for c in vs.cases if c.label == "napot-64k" and c.pa is not None]
    assert napot and all(pa >> 16 == napot[0][1] >> 16 for _, pa in napot)
    assert all(pa & 0xFFFF == va & 0xFFFF for va, pa in napot)        # Svnapot: PA bits 15:12 from the VA
    assert len(generate_riscv("sv39", 5, cases=1000).cases) == 1000


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON"),
    ('{"schema": "other/1"}', "'schema' must be"),
    ('{"schema": "pagetable-vectors/1", "arch": "riscv64", "mode": "sv39", "memory": []}', "'memory'"),
])
def test_reader_rejects_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "vectors.json").write_text(text)
    with pytest.raises(VectorsError, match=message):
        VectorSet.read(tmp_path)


def test_reader_rejects_bad_cases_and_escaping_paths(tmp_path: Path) -> None:
    generate_riscv("sv39", 1, cases=3).write(tmp_path, "")
    doc = json.loads((tmp_path / "vectors.json").read_text())
    doc["cases"][1] = {"va": 12, "access": "read", "privilege": "user", "pa": "0x0"}
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match=r"cases\[1\]: 'va' must be a hex string"):
        VectorSet.read(tmp_path)
    doc["cases"][1] = {"va": "0x0", "access": "fetch", "privilege": "user", "pa": "0x0"}
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match="'access' must be one of"):
        VectorSet.read(tmp_path)
    doc["memory"][0]["file"] = "../mem.bin"
    (tmp_path / "vectors.json").write_text(json.dumps(doc))
    with pytest.raises(VectorsError, match="inside the vector directory"):
        VectorSet.read(tmp_path)


def test_cli_generate_show_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "generate", "--mode", "sv57", "--seed", "0x10", "--out", str(out), "--cases", "40",
                 "--mxr"]) == 0
    assert main(["vectors", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "riscv64 sv57" in shown and "PTE" in shown and "40 cases:" in shown
    assert "note: the level-" in shown                      # the table pointer outside RAM is reported
    assert main(["vectors", "check", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("40 passed, 0 failed")
    # a tampered expectation is caught
    doc = json.loads((out / "vectors.json").read_text())
    case = next(c for c in doc["cases"] if "pa" in c)
    case["pa"] = hex(int(case["pa"], 16) + 0x1000)
    (out / "vectors.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(out)]) == 1
    assert "39 passed, 1 failed" in capsys.readouterr().out


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "show", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pagetable: error: cannot read") and err.count("\n") == 1
    generate_riscv("sv39", 1, cases=5).write(tmp_path, "")
    (tmp_path / "mem.bin").write_bytes(b"\0" * 12)
    assert main(["vectors", "check", str(tmp_path)]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["explain", "notanumber"])
    assert exc.value.code == 2


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "0x200800c7"]) == 0
    out = capsys.readouterr().out
    assert "PPN      = 0x80200" in out and "-> leaf; PA 0x80200000" in out
    assert main(["explain", "--register", "satp", "0x8000000000080000"]) == 0
    assert "MODE     = 8 (1000)  Sv39" in capsys.readouterr().out
