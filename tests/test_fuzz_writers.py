"""Fuzz cases for `vectors generate --formats/--hex-width/--hex-offset` (pagetable/vectors/writers.py):
random option values give exit 0, with exactly the files asked for, or 2 with one line
`pagetable: error: ...`, never a traceback."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from pagetable.vectors import writers

from .fuzzing import count, fuzz
from .test_fuzz_cli import run

NAMES = st.sampled_from([*writers.FORMATS, "all", "", "pdf", "BIN", " hex", "S,", "elf,,h", "-h"])


@fuzz(short=5, long=200)
@given(formats=st.lists(NAMES, min_size=1, max_size=4).map(",".join) | st.text(max_size=12),
       width=st.sampled_from(["8", "32", "64", "16", "-8"]),
       offset=st.sampled_from(["0", "0x80000000", "0x80000001", "0x90000000", "-1", "0x1" + "0" * 17, "zz"]))
def test_generate_formats_fuzz(formats: str, width: str, offset: str) -> None:
    count("vectors generate --formats")
    with tempfile.TemporaryDirectory() as out:   # (not `bounded`: tracing allocations made the 8 MiB
                                                  # image's text formats take minutes)
        target = os.path.join(out, "v")
        try:
            code = run(["vectors", "generate", "--mode", "sv39", "--seed", "1", "--cases", "4", "--out", target,
                        f"--formats={formats}", f"--hex-width={width}", f"--hex-offset={offset}"], (0, 2))
        except SystemExit as exc:                     # argparse: usage and exit status 2
            assert exc.code == 2
            code = 2
        if code == 0:
            chosen = writers.parse_formats(formats)
            expected = {writers.FILES[f] for f in chosen if f in writers.FILES} | {"README.txt"}
            expected |= {"mem.bin"} if {"bin", "json"} & set(chosen) else set()
            expected |= {"vectors.json"} if "json" in chosen else set()
            assert set(os.listdir(target)) == expected
        else:
            assert not os.path.exists(target)          # refused before anything is written
