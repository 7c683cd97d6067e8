"""The x86-64 and AArch64 generators let the seed choose the structure of a set, not only its addresses:
two seeds give other labels, other fault levels and other counts (the same seed the same bytes:
tests/test_vectors_x86.py, tests/test_vectors_aarch64.py), and across a handful of seeds each rule the seed
places lands at every level where it applies, each case faulting there as the manuals say (Intel SDM Vol.
3A 4.7, Vol. 3C 29.3.3; Arm ARM DDI 0487 D8.4-D8.5, D8.14)."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from functools import cache

import pytest

from pagetable.vectors import VectorSet
from pagetable.vectors.aarch64.gen import generate_aarch64
from pagetable.vectors.x86_64.gen import generate_x86

SEEDS = range(1, 25)
Rule = tuple[str, set[int], str, int, str]
"""A placed rule: the label prefix (its level follows as -L<n>), the levels where it applies, the reason
its cases give, the level the walk reports it at relative to n, and the access (as a supervisor) that
shows it."""

_X86_COMMON: list[Rule] = [("leaf-outside-ram", {1, 2, 3}, "pa-outside-memory", 0, "read")]
RULES: dict[str, list[Rule]] = {
    "x86_64-4level": [*_X86_COMMON, ("table-outside-ram", {2, 3, 4}, "table-outside-memory", -1, "read"),
                      ("not-present-bits", {1, 2, 3, 4}, "invalid", 0, "read")],
    "x86_64-5level": [*_X86_COMMON, ("table-outside-ram", {2, 3, 4, 5}, "table-outside-memory", -1, "read"),
                      ("not-present-bits", {1, 2, 3, 4, 5}, "invalid", 0, "read")],
    "x86_64-ept4": [("ept-table-outside-ram", {2, 3, 4}, "table-outside-memory", -1, "read"),
                    ("ept-page-outside-ram", {1, 2, 3}, "pa-outside-memory", 0, "read")],
    "x86_64-4level+npt": [("not-present-bits", {1, 2, 3, 4}, "invalid", 0, "read"),
                          ("nested-hole", {1, 2, 3}, "invalid", 0, "read")],
    "aarch64-4k-48": [("table-outside-ram", {0, 1, 2}, "table-outside-memory", 1, "read"),
                      ("leaf-outside-ram", {1, 2, 3}, "pa-outside-memory", 0, "read"),
                      ("dbm-ro-block", {1, 2}, "permission", 0, "write")],
    "aarch64-64k-48": [("table-outside-ram", {1, 2}, "table-outside-memory", 1, "read"),
                       ("leaf-outside-ram", {2, 3}, "pa-outside-memory", 0, "read"),
                       ("dbm-ro-block", {2}, "permission", 0, "write")],
}
"""Per mode, the rules the seed places at a level of its choice."""


@cache
def _set(mode: str, seed: int) -> VectorSet:
    generate: Callable[[str, int], VectorSet] = generate_aarch64 if mode.startswith("aarch64") else generate_x86
    return generate(mode, seed)


def _placed(vs: VectorSet, prefix: str) -> dict[str, int]:
    """The labels of `vs` for the rule `prefix` (after a region's name on AArch64), with their level."""
    pattern = re.compile(rf"^(?:(?:ttbr[01]|el2)-)?{re.escape(prefix)}-L(-?\d+)$")
    return {c.label: int(m[1]) for c in vs.cases if (m := pattern.match(c.label))}


@pytest.mark.parametrize("mode", RULES)
def test_two_seeds_give_other_structure(mode: str) -> None:
    """Labels, the (reason, level) counts and the memory types differ between seeds 1 and 2, beyond the
    addresses."""
    one, two = _set(mode, 1), _set(mode, 2)
    assert {c.label for c in one.cases} != {c.label for c in two.cases}
    outcomes = [collections.Counter((c.reason, c.level, c.stage) for c in vs.cases) for vs in (one, two)]
    assert outcomes[0] != outcomes[1]
    types = [collections.Counter(c.memtype for c in vs.cases) for vs in (one, two)]
    assert types[0] != types[1]
    superpages = [sorted(c.label for c in vs.cases if re.search(r"superpage-\dG?M?-|block-L|ept-[12][MG]-", c.label))
                  for vs in (one, two)]
    assert superpages[0] != superpages[1]                   # large pages with other rights


@pytest.mark.parametrize("mode", RULES)
def test_every_level_of_a_placed_rule_gets_its_fault(mode: str) -> None:
    for prefix, levels, reason, offset, access in RULES[mode]:
        drawn: set[int] = set()
        for seed in SEEDS:
            vs = _set(mode, seed)
            placed = _placed(vs, prefix)
            assert placed, (prefix, seed)
            drawn |= set(placed.values())
            for c in vs.cases:
                if c.label in placed and c.access == access and c.privilege == "supervisor":
                    assert (c.reason, c.level) == (reason, placed[c.label] + offset), (seed, c)
        assert drawn == levels, prefix


@pytest.mark.parametrize("mode", ["x86_64-4level", "x86_64-5level"])
def test_huge_pages_of_every_owner_and_right_across_seeds(mode: str) -> None:
    """2 MiB and 1 GiB pages: user and supervisor, read/write and read-only, executable and XD."""
    seen = collections.defaultdict(set)
    for seed in SEEDS:
        for label in {c.label for c in _set(mode, seed).cases}:
            if m := re.fullmatch(r"superpage-(2M|1G)-(user|kernel)-(rw|ro|rwx|rx)", label):
                seen[m[1]].add((m[2], m[3]))
    every = {(owner, rights) for owner in ("user", "kernel") for rights in ("rw", "ro", "rwx", "rx")}
    assert seen == {"2M": every, "1G": every}


def test_aarch64_blocks_of_every_right_and_attrindx_across_seeds() -> None:
    """Blocks at every block level with every AP/UXN/PXN set of their region, and pages with every Normal
    AttrIndx of Linux's MAIR_EL1 (0 and 1 Normal Write-Back, 2 Normal Non-cacheable)."""
    seen = collections.defaultdict(set)
    types = set()
    for seed in SEEDS:
        vs = _set("aarch64-4k-48", seed)
        for c in vs.cases:
            if m := re.fullmatch(r"(ttbr[01])-block-L(\d)-((?:user-)?[rwx]+o?)", c.label):
                seen[m[1], int(m[2])].add(m[3])
            if re.fullmatch(r"ttbr1-(rw|ro|rx|rwx)", c.label) and c.pa is not None:
                types.add(c.memtype)
    user, kernel = {"user-rw", "user-ro", "user-rx", "user-xo", "user-rwx"}, {"rw", "ro", "rx", "rwx"}
    assert dict(seen) == {("ttbr0", 1): user, ("ttbr0", 2): user, ("ttbr1", 1): kernel, ("ttbr1", 2): kernel}
    assert types == {"normal-wb", "normal-nc"}
