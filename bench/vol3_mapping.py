"""volatility3's enumeration of a raw image's mappings, timed (run by bench/volatility.py in volatility3's own
venv, never the project's: this file imports volatility3 and the standard library only, nothing of pagetable).

`python vol3_mapping.py IMAGE OUT REPEAT [CR3 START LENGTH]`: the Intel32e layer (4-level paging) over IMAGE
as physical memory with the PML4 at CR3 (default 0), driven without an OS as /work/shared/peers.md §1.6
shows; `mapping(START, LENGTH)` (default 0 and 1 GiB; volatility3's VAs are the 48-bit ones, not
sign-extended: the kernel half starts at 0x800000000000) run REPEAT times, each on a fresh context and
layer (its caches start empty). Writes the runs of the last one to OUT as u64 triples (va, length, pa) and
prints one JSON line: {"times": [seconds per run], "version": "2.28.2"}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from array import array
from typing import Any

GiB = 1 << 30


def layer(image: str, cr3: int) -> Any:
    """A fresh Intel32e layer over `image` with the PML4 at `cr3`."""
    from volatility3.framework import contexts
    from volatility3.framework.layers import intel, physical

    ctx = contexts.Context()
    ctx.config["phys.location"] = "file://" + os.path.abspath(image)
    ctx.add_layer(physical.FileLayer(ctx, "phys", "physmem"))
    ctx.config["virt.memory_layer"] = "physmem"
    ctx.config["virt.page_map_offset"] = cr3
    virt = intel.Intel32e(ctx, "virt", "virt")
    ctx.add_layer(virt)
    return virt


def main() -> None:
    image, out, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cr3, start, length = (int(a, 0) for a in sys.argv[4:7]) if len(sys.argv) > 4 else (0, 0, GiB)
    import volatility3.framework

    times: list[float] = []
    runs: list[tuple[int, int, int, int, str]] = []
    for _ in range(repeat):
        virt = layer(image, cr3)
        t = time.perf_counter()
        runs = list(virt.mapping(start, length, ignore_errors=True))
        times.append(time.perf_counter() - t)
    flat = array("Q")
    for va, length, pa, _, _ in runs:
        flat.extend((va, length, pa))
    with open(out, "wb") as fh:
        flat.tofile(fh)
    print(json.dumps({"times": times, "version": volatility3.framework.constants.PACKAGE_VERSION}))


if __name__ == "__main__":
    main()
