"""A picture of an address space as the hardware sees it, as `pagetable plot` draws it (`plot_space`).

The 64-bit VA space holds ranges from a 4 KiB page to a 256 TiB half, so no linear axis shows them both.
The picture has one row per VA range a region translates (`space.region_spans`: AArch64's TTBR0_EL1 and
TTBR1_EL1 ranges; the lower (user) and upper (kernel) halves of CR3's or satp's sign-extended VA space), and
each row lays its ranges out in VA order, each as wide as log2 of its size less 11: a 4 KiB page is 1 unit
wide, a 2 MiB page 10, a 1 GiB page 19, a 256 TiB half 37. Unmapped ranges (gaps) are drawn the same way in
light grey, half as wide (`GAP_WEIGHT`: the mapped ranges are what the picture is about), so that the
picture is a log-compressed map of the whole row; the rows share one scale. Ticks
name the VA where a mapped range starts (as many as fit).

Mapped ranges are leaves merged while contiguous in VA with the same effective permissions and memory type
(PA is not considered: the picture shows what is accessible how, not where it goes). Their colour is the
effective permission at both privileges (`listing.permissions`: `S:rw- U:---`), a hatch the memory type
(none for write-back or the platform's default, `////` for uncached and Device memory, `....` for the other
types), and the legend names each combination drawn. Entries the hardware rejects for every access (the
faults `Walker.mappings` lists) are dark grey, cross-hatched and marked with a red triangle above.

matplotlib (the `pagetable[plot]` extra) is imported when a picture is drawn, with the Agg renderer; the
file format follows the output's suffix (PNG, SVG with text kept as text, PDF), and the same input draws
the same bytes (no dates in the metadata, a fixed SVG id salt).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from ..errors import PagetableError
from ..listing import linux_size, permissions
from ..translation import MemoryType
from .space import RegionSpan, Space

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS: Final = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
"""The output formats, by the suffix of the output file."""

GAP: Final = -1
FAULT: Final = 1 << 16
"""Run classes besides `perms | memtype << 8`: an unmapped gap, and a rejected entry."""

_KERNEL = {"r--": "#9ecae1", "rw-": "#3182bd", "r-x": "#31a354", "rwx": "#d62728", "--x": "#a1d99b",
           "-w-": "#6baed6", "-wx": "#e377c2", "---": "#cccccc"}
_USER = {"r--": "#dadaeb", "rw-": "#9e9ac8", "r-x": "#fdae6b", "rwx": "#e6550d", "--x": "#fdd0a2",
         "-w-": "#bcbddc", "-wx": "#f768a1", "---": "#cccccc"}
_UNCACHED = {MemoryType.UC, MemoryType.UC_MINUS, MemoryType.RISCV_IO, MemoryType.DEVICE_NGNRNE,
             MemoryType.DEVICE_NGNRE, MemoryType.DEVICE_NGRE, MemoryType.DEVICE_GRE}
_CACHED = {MemoryType.WB, MemoryType.DEFAULT, MemoryType.NORMAL_WB}
GAP_COLOUR, FAULT_COLOUR = "#f0f0f0", "#444444"
UNIT_SHIFT = 11
GAP_WEIGHT = 0.5
"""A range of 2**n bytes is n - UNIT_SHIFT units wide (4 KiB: 1); a gap GAP_WEIGHT times that."""


def output_format(out: str) -> str:
    """The format `out`'s suffix names; PagetableError for another suffix."""
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise PagetableError(f"--out {out[:80]}: the suffix must name the format: {', '.join(FORMATS)}")
    return fmt


def colour(perms: int) -> str:
    """The colour of a permission mask: by what the user may do when it may do anything, else by the
    supervisor's rights (write and execute together in red)."""
    text = permissions(perms)
    user = text[8:]
    return _USER[user] if user != "---" else _KERNEL[text[2:5]]


def hatch(memtype: int) -> str:
    mt = MemoryType(memtype)
    return "" if mt in _CACHED else "////" if mt in _UNCACHED else "...."


def runs(space: Space) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """The leaves merged into runs contiguous in VA of one class (perms | memtype << 8, or FAULT): first
    byte, last byte and class of each."""
    cls = np.where(space.verdict == 0, space.perms.astype(np.int64) | space.memtype.astype(np.int64) << 8, FAULT)
    if not len(space):
        return space.first, space.last, cls
    joins = (space.first[1:] == space.last[:-1] + np.uint64(1)) & (cls[1:] == cls[:-1])
    starts = np.concatenate(([0], np.flatnonzero(~joins) + 1)).astype(np.intp)
    ends = np.concatenate((starts[1:] - 1, [len(space) - 1])).astype(np.intp)
    return space.first[starts], space.last[ends], cls[starts]


def _row(first: npt.NDArray[np.uint64], last: npt.NDArray[np.uint64], cls: npt.NDArray[np.int64],
         span: RegionSpan) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64],
                                    npt.NDArray[np.uint64]]:
    """The segments of one row, the gaps between the runs included: x, width, class and first VA of each."""
    one = np.uint64(1)
    inner = first[1:] > last[:-1] + one                   # the gaps between runs, then before and after them
    ends: list[tuple[int, int]] = []
    if not first.shape[0]:
        ends.append((span.first, span.last))
    else:
        if int(first[0]) > span.first:
            ends.append((span.first, int(first[0]) - 1))
        if int(last[-1]) < span.last:
            ends.append((int(last[-1]) + 1, span.last))
    outer = np.array(ends, dtype=np.uint64).reshape(-1, 2)
    gap_first, gap_last = [last[:-1][inner] + one, outer[:, 0]], [first[1:][inner] - one, outer[:, 1]]
    gf, gl = np.concatenate(gap_first), np.concatenate(gap_last)
    seg_first = np.concatenate((first, gf))
    seg_size = np.concatenate(((last - first).astype(np.float64), (gl - gf).astype(np.float64))) + 1.0
    seg_cls = np.concatenate((cls, np.full(gf.shape[0], GAP, dtype=np.int64)))
    order = np.argsort(seg_first, kind="stable")
    seg_first, seg_size, seg_cls = seg_first[order], seg_size[order], seg_cls[order]
    width = np.maximum(np.log2(seg_size) - UNIT_SHIFT, 0.5) * np.where(seg_cls == GAP, GAP_WEIGHT, 1.0)
    x = np.concatenate(([0.0], np.cumsum(width)[:-1]))
    return x, width, seg_cls, seg_first


def _label(cls: int) -> str:
    if cls == FAULT:
        return "fault: an entry rejected for every access"
    if cls == GAP:
        return "unmapped"
    return f"{permissions(cls & 0xFF)} {MemoryType(cls >> 8).label}"


def _draw_row(ax: Axes, x: npt.NDArray[np.float64], width: npt.NDArray[np.float64], cls: npt.NDArray[np.int64],
              va: npt.NDArray[np.uint64], span: RegionSpan, scale: float) -> None:
    for c in np.unique(cls).tolist():
        sel = cls == c
        bars = list(zip(x[sel].tolist(), width[sel].tolist(), strict=True))
        face = GAP_COLOUR if c == GAP else FAULT_COLOUR if c == FAULT else colour(c & 0xFF)
        pattern = "xx" if c == FAULT else "" if c == GAP else hatch(c >> 8)
        ax.broken_barh(bars, (0, 1), facecolors=face, edgecolors="white" if c != GAP else GAP_COLOUR,
                       linewidth=0.3, hatch=pattern, label=_label(c))
    faults = cls == FAULT
    if faults.any():
        ax.plot(x[faults] + width[faults] / 2, np.full(int(faults.sum()), 1.12), "v", color="#d62728",
                markersize=4, clip_on=False)
    mapped = np.flatnonzero(cls != GAP)
    if mapped.shape[0]:                    # a tick per tenth of the scale at most: the first run in each
        _, pick = np.unique((x[mapped] // (scale / 8)).astype(np.int64), return_index=True)
        ticks = mapped[pick]
        ax.set_xticks(x[ticks].tolist(), [f"{v:#x}" for v in va[ticks].tolist()], fontsize=6, rotation=20,
                      ha="right")
    else:
        ax.set_xticks([])
        ax.text(float(width.sum()) / 2, 0.5, "nothing mapped", ha="center", va="center", fontsize=8, color="#666666")
    ax.set_xlim(0, scale)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{span.label}: {span.first:#x}-{span.last + 1:#x} ({linux_size(span.last + 1 - span.first).strip()})",
                 fontsize=8, loc="left")


def plot_space(space: Space, out: str, title: str, start: int = 0, end: int = 1 << 64) -> None:
    """Draw `space` (its region spans that meet [start, end)) into the file `out` (its suffix the format)."""
    fmt = output_format(out)
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise PagetableError("plot needs matplotlib: install pagetable with its plot extra "
                             "(pip install 'pagetable[plot]')") from None
    first, last, cls = runs(space)
    rows = []
    for span in space.spans:
        lo, hi = max(span.first, start), min(span.last, end - 1)
        if lo > hi:
            continue
        sel = (first >= np.uint64(lo)) & (first <= np.uint64(hi))
        rows.append((_row(first[sel], last[sel], cls[sel], RegionSpan(span.label, lo, hi)),
                     RegionSpan(span.label, lo, hi)))
    scale = max([float(r[0][0][-1] + r[0][1][-1]) for r in rows if r[0][0].shape[0]], default=1.0)
    with matplotlib.rc_context({"svg.hashsalt": "pagetable", "svg.fonttype": "none", "hatch.linewidth": 0.6}):
        fig = Figure(figsize=(14, 1.25 * len(rows) + 1.6), dpi=110, layout="constrained")
        axes = fig.subplots(len(rows) or 1, 1, squeeze=False)[:, 0]
        for ax, ((x, width, c, va), span) in zip(axes, rows, strict=False):
            _draw_row(ax, x, width, c, va, span, scale)
        axes[-1].set_xlabel("VA order; each range is log2(its size) - 11 units wide (4 KiB: 1, 2 MiB: 10, 1 GiB: 19, "
                            "256 TiB: 37), unmapped ranges half that", fontsize=7)
        present = sorted({int(k) for (_, _, c, _), _ in rows for k in np.unique(c).tolist()},
                         key=lambda k: (k == GAP, k == FAULT, k & 0xFF, k >> 8))
        handles: list[Any] = []
        for k in present:
            face = GAP_COLOUR if k == GAP else FAULT_COLOUR if k == FAULT else colour(k & 0xFF)
            pattern = "xx" if k == FAULT else "" if k == GAP else hatch(k >> 8)
            handles.append(Patch(facecolor=face, hatch=pattern, edgecolor="#888888", linewidth=0.3, label=_label(k)))
        if handles:
            fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=7,
                       frameon=False, handlelength=3, handleheight=1.6)
        fig.suptitle(title, fontsize=9)
        metadata: dict[str, Any] = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}[fmt]
        fig.savefig(out, format=fmt, metadata=metadata)


__all__ = ["FORMATS", "colour", "hatch", "output_format", "plot_space", "runs"]
