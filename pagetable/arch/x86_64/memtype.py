"""The memory type of an access that two x86 memory-type sources decide together.

Intel SDM Vol. 3A, section "Selecting Memory Types for Pentium III and More Recent Processor Families"
(Table 11-7 in the editions that number the cache chapter 11, "Effective Page-Level Memory Types"): a page's
PAT type combined with the MTRR type of its physical address. EPT uses the same table for a guest-physical
page with "ignore PAT" clear, the EPT memory type in the MTRR's place (SDM Vol. 3C, section 29.3.7.2
"Memory Type Used for Translated Guest-Physical Addresses"). MTRRs themselves are not modelled.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ...lanes import Small
from ...translation import MemoryType

U8 = npt.NDArray[np.uint8]

UC, WC, WT, WP, WB, UC_MINUS = (MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WP, MemoryType.WB,
                                MemoryType.UC_MINUS)
_COLUMNS = (UC, UC_MINUS, WC, WT, WB, WP)
EFFECTIVE = {                         # MTRR-role type -> the effective type per PAT type, in _COLUMNS' order
    UC: (UC, UC, WC, UC, UC, UC),
    WC: (UC, WC, WC, UC, WC, UC),
    WT: (UC, UC, WC, WT, WT, WP),
    WB: (UC, UC, WC, WT, WB, WP),
    WP: (UC, WC, WC, WT, WP, WP),
}
"""The SDM's table, row by row (its footnote-3 combinations, once undefined, included as it gives them)."""


def _table() -> npt.NDArray[np.uint8]:
    """EFFECTIVE as a lookup by (MTRR-role type, PAT type) values; NONE where either is not one of them."""
    size = max(MemoryType) + 1
    out = np.full((size, size), MemoryType.NONE, dtype=np.uint8)
    for row, types in EFFECTIVE.items():
        for pat, effective in zip(_COLUMNS, types, strict=True):
            out[row, pat] = effective
    return out


_TABLE = _table().reshape(-1)
_STRIDE = max(MemoryType) + 1


def combined_type(mtrr_like: Small, pat: Small) -> Small:
    """The effective memory type of each lane from the type in the MTRR's role and the PAT type (columns or
    ints; NONE where either is NONE or not a combination the table has)."""
    if isinstance(mtrr_like, np.ndarray) or isinstance(pat, np.ndarray):
        out: U8 = _TABLE[np.asarray(mtrr_like, dtype=np.intp) * _STRIDE + np.asarray(pat, dtype=np.intp)]
        return out
    return int(_TABLE[mtrr_like * _STRIDE + pat])
