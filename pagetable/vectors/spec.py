"""The vector spec: a described address space in TOML, read for `pagetable vectors build` (docs/vectors-spec.md).

A spec names a vector mode (any mode of `vectors generate`), its walker options, the mappings (VA, PA, size,
permissions, user, global, memory type, page-size policy, stage), the deliberate faults by name, and the
accesses whose expected outcome the vector set records (explicit ones, and generated: page boundaries,
every fault, random ones per mapping). Reading checks everything a user can get wrong and raises
`SpecError` with the file, the line and the key (`spec.toml:12: map[2].perms: ...`): TOML syntax, unknown
or misspelt keys, values of the wrong type or out of range, sizes that are not sizes. What only the
address space can tell (an overlap, a fault the walker reads otherwise, a PA outside RAM) is checked when
the spec is built, with the same kind of message (`pagetable.vectors.build`).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PagetableError
from ..flags import MappingFlags as F
from .generation import MAX_CASES
from .schema import ACCESSES, PRIVILEGES

MAX_SPEC = 1 << 24
"""The largest spec file read (16 MiB: far more than any hand-written address space)."""
_SIZE = re.compile(r"(?i)\s*(\d+)\s*([KMGTP]?)(?:i?B)?\s*")
_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}
TOP_KEYS = ("mode", "seed", "asid", "options", "registers", "memory", "map", "fault", "access", "generate")
MAP_KEYS = ("va", "pa", "size", "perms", "user", "global", "memtype", "page", "accessed", "dirty", "stage", "label")
FAULT_KEYS = ("kind", "va", "level", "stage", "label")
ACCESS_KEYS = ("va", "access", "privilege", "label")
MEMORY_KEYS = ("base", "size")
GENERATE_KEYS = ("boundaries", "faults", "random")


class SpecError(PagetableError):
    """A spec that cannot be built: the message starts with `file:line: key:`."""


@dataclass(frozen=True)
class Place:
    """Where a value is in the spec: its key path (`map[2].perms`) and line (0: unknown)."""

    path: str
    key: str
    line: int
    lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def error(self, message: str) -> SpecError:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return SpecError(f"{where}: {self.key}: {message}")

    def sub(self, key: str) -> Place:
        """The place of `key` inside this one (`map[2]` → `map[2].va`)."""
        full = f"{self.key}.{key}" if self.key else key
        return Place(self.path, full, _line_of(self.lines, full), self.lines)


@dataclass(frozen=True)
class MapSpec:
    """One mapping: [va, va + size) to pa (None: fresh frames) with `perms` (READ/WRITE/EXECUTE), user and
    global, `memtype` (a memory type label, None: the mode's default), `page` (0: the largest page that fits
    at each step, else that page size), in `stage` 1 or 2; `accessed` and `dirty` (None: as the
    architecture's encoding leaves them) set or clear the leaves' A/D state."""

    place: Place
    va: int
    pa: int | None
    size: int
    perms: F
    user: bool
    global_: bool
    memtype: str | None
    page: int
    stage: int | None
    label: str
    accessed: bool | None = None
    dirty: bool | None = None


@dataclass(frozen=True)
class FaultSpec:
    """A deliberate fault: the entry `kind` names, written where the walk of `va` reads its level `level`
    (the manual's number; None: the kind's default) in `stage`."""

    place: Place
    kind: str
    va: int
    level: int | None
    stage: int | None
    label: str


@dataclass(frozen=True)
class AccessSpec:
    """Accesses at one VA: each of `accesses` at each of `privileges`."""

    place: Place
    va: int
    accesses: tuple[str, ...]
    privileges: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class Spec:
    """A whole spec, checked as far as a spec can be without building it."""

    path: str
    mode: str
    seed: int
    asid: int
    options: dict[str, Any]
    registers: dict[str, int]
    memory: list[tuple[int, int]] | None
    maps: list[MapSpec]
    faults: list[FaultSpec]
    accesses: list[AccessSpec]
    boundaries: bool = True
    fault_cases: bool = True
    random: int = 0
    lines: dict[str, int] = field(default_factory=dict, repr=False)
    text: bytes = field(default=b"", repr=False)            # the file as read (a vector set keeps a copy)

    def place(self, key: str) -> Place:
        return Place(self.path, key, _line_of(self.lines, key), self.lines)


def size_value(value: object, place: Place) -> int:
    """A size: a positive integer, or a string such as "4K", "2M", "1G", "512G", "256T" (binary units)."""
    if type(value) is int:
        n = value
    elif isinstance(value, str) and (m := _SIZE.fullmatch(value)):
        n = int(m.group(1)) << _UNITS[m.group(2).upper()]
    else:
        raise place.error(f"a size is an integer or a string like \"4K\", \"2M\", \"1G\", not {value!r}")
    if n <= 0 or n >= 1 << 64:
        raise place.error(f"a size must be from 1 to 2**64 - 1, not {n}")
    return n


def _address(value: object, place: Place) -> int:
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise place.error(f"an address is an integer from 0 to 2**64 - 1 (0x8000_0000 in TOML), not {value!r}")
    return value


def _boolean(value: object, place: Place) -> bool:
    if type(value) is not bool:
        raise place.error(f"must be true or false, not {value!r}")
    return value


def _string(value: object, place: Place) -> str:
    if not isinstance(value, str):
        raise place.error(f"must be a string, not {value!r}")
    return value


def _small(value: object, place: Place, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise place.error(f"must be an integer from {lo} to {hi}, not {value!r}")
    return value


def _choices(value: object, place: Place, names: tuple[str, ...]) -> tuple[str, ...]:
    """"all", one name, or a list of names of `names`."""
    items = names if value == "all" else (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise place.error(f"must be \"all\", one of {', '.join(names)}, or a list of them, not {value!r}")
    for item in items:
        if item == "all" and value != "all":
            raise place.error("\"all\" stands alone (= \"all\"), not in a list")
        if item not in names:
            raise place.error(f"{item!r} is not one of {', '.join(names)} (or \"all\")")
    return tuple(dict.fromkeys(items))


def _perms(value: object, place: Place) -> F:
    text = _string(value, place)
    letters = {"r": F.READ, "w": F.WRITE, "x": F.EXECUTE}
    out = F(0)
    for ch in text:
        if ch not in letters and ch != "-":
            raise place.error(f"unknown permission {ch!r} in {text!r} (letters r, w, x; user access is `user = true`)")
        out |= letters.get(ch, F(0))
    return out


class _Reader:
    """Reads one table of the document, naming keys as `prefix.key` at their lines."""

    def __init__(self, spec_path: str, lines: dict[str, int], prefix: str, doc: object,
                 allowed: tuple[str, ...]) -> None:
        self.path, self.lines, self.prefix = spec_path, lines, prefix
        if not isinstance(doc, AbcMapping):
            raise self.place("").error(f"must be a table, not {doc!r}")
        self.doc: AbcMapping[str, Any] = doc
        for key in doc:
            if key not in allowed:
                raise self.place(key).error(f"unknown key (the keys here: {', '.join(allowed)})")

    def place(self, key: str) -> Place:
        full = f"{self.prefix}.{key}" if self.prefix and key else self.prefix or key
        return Place(self.path, full, _line_of(self.lines, full), self.lines)

    def get(self, key: str, default: object = None) -> Any:
        return self.doc.get(key, default)

    def need(self, key: str) -> Any:
        if key not in self.doc:
            raise self.place(key).error("is missing")
        return self.doc[key]


def _tables(r: _Reader, key: str) -> list[Any]:
    """The array of tables `key` (`[[key]]`), or []."""
    value = r.get(key, [])
    if not isinstance(value, list):
        raise r.place(key).error(f"must be an array of tables ([[{key}]] sections), not {value!r}")
    return value


def read_spec(path: str) -> Spec:
    """Read and check the spec at `path` (SpecError: file, line, key and what is wrong)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SPEC + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror or exc}") from None
    if len(data) > MAX_SPEC:
        raise SpecError(f"{path}: the spec is larger than {MAX_SPEC >> 20} MiB")
    try:
        text = data.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a TOML file (not UTF-8 text: byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        where = f"{path}:{m.group(1)}" if m else path
        raise SpecError(f"{where}: TOML syntax: {message[:m.start()].strip() if m else message}") from None
    except RecursionError:
        raise SpecError(f"{path}: TOML nested too deeply") from None
    return dataclasses.replace(parse_spec(doc, path, key_lines(text)), text=data)


def parse_spec(doc: dict[str, Any], path: str = "<spec>", lines: dict[str, int] | None = None) -> Spec:
    """A spec from a parsed TOML document (`lines`: each key path's line, from `key_lines`)."""
    lines = lines or {}
    top = _Reader(path, lines, "", doc, TOP_KEYS)
    mode = _string(top.need("mode"), top.place("mode"))
    seed = _small(top.get("seed", 0), top.place("seed"), 0, (1 << 63) - 1)
    asid = _small(top.get("asid", 0), top.place("asid"), 0, 0xFFFF)
    options = dict(_Reader(path, lines, "options", top.get("options", {}), tuple(top.get("options", {}) or ())).doc)
    regs = _Reader(path, lines, "registers", top.get("registers", {}), tuple(top.get("registers", {}) or ()))
    registers = {k: _address(v, regs.place(k)) for k, v in regs.doc.items()}
    memory: list[tuple[int, int]] | None = None
    if "memory" in doc:
        memory = []
        for k, m in enumerate(_tables(top, "memory")):
            r = _Reader(path, lines, f"memory[{k}]", m, MEMORY_KEYS)
            base, size = _address(r.need("base"), r.place("base")), size_value(r.need("size"), r.place("size"))
            for key, value in (("base", base), ("size", size)):
                if value % 4096:
                    raise r.place(key).error(f"{value:#x} is not a multiple of 4 KiB (a page)")
            for j, (b, n) in enumerate(memory):
                if base < b + n and b < base + size:
                    raise r.place("base").error(f"[{base:#x}, +{size:#x}) overlaps memory[{j}] [{b:#x}, +{n:#x})")
            memory.append((base, size))
        if not memory:
            raise top.place("memory").error("names no region ([[memory]] with base and size)")
    maps = [_map(path, lines, k, m) for k, m in enumerate(_tables(top, "map"))]
    faults = []
    for k, f in enumerate(_tables(top, "fault")):
        r = _Reader(path, lines, f"fault[{k}]", f, FAULT_KEYS)
        level = r.get("level")
        faults.append(FaultSpec(r.place(""), _string(r.need("kind"), r.place("kind")),
                                _address(r.need("va"), r.place("va")),
                                None if level is None else _small(level, r.place("level"), -1, 5),
                                _stage(r), _string(r.get("label", ""), r.place("label"))))
    accesses = []
    for k, a in enumerate(_tables(top, "access")):
        r = _Reader(path, lines, f"access[{k}]", a, ACCESS_KEYS)
        accesses.append(AccessSpec(r.place(""), _address(r.need("va"), r.place("va")),
                                   _choices(r.get("access", "all"), r.place("access"), ACCESSES),
                                   _choices(r.get("privilege", "all"), r.place("privilege"), PRIVILEGES),
                                   _string(r.get("label", ""), r.place("label"))))
    gen = _Reader(path, lines, "generate", top.get("generate", {}), GENERATE_KEYS)
    return Spec(path, mode, seed, asid, options, registers, memory, maps, faults, accesses,
                _boolean(gen.get("boundaries", True), gen.place("boundaries")),
                _boolean(gen.get("faults", True), gen.place("faults")),
                _small(gen.get("random", 0), gen.place("random"), 0, MAX_CASES), lines)


def _stage(r: _Reader) -> int | None:
    stage = r.get("stage")
    return None if stage is None else _small(stage, r.place("stage"), 1, 2)


def _page(value: object, place: Place) -> int:
    """A mapping's page policy: 0 for "largest", else the forced page size."""
    if value == "largest":
        return 0
    try:
        return size_value(value, place)
    except SpecError:
        raise place.error(f"is \"largest\" or a page size such as \"4K\", \"2M\", \"1G\", not {value!r}") from None


def _optional_bool(r: _Reader, key: str) -> bool | None:
    value = r.get(key)
    return None if value is None else _boolean(value, r.place(key))


def _map(path: str, lines: dict[str, int], k: int, doc: object) -> MapSpec:
    r = _Reader(path, lines, f"map[{k}]", doc, MAP_KEYS)
    pa = r.get("pa")
    page = r.get("page", "largest")
    memtype = r.get("memtype")
    return MapSpec(r.place(""), _address(r.need("va"), r.place("va")),
                   None if pa is None else _address(pa, r.place("pa")),
                   size_value(r.need("size"), r.place("size")), _perms(r.need("perms"), r.place("perms")),
                   _boolean(r.get("user", False), r.place("user")), _boolean(r.get("global", False), r.place("global")),
                   None if memtype is None else _string(memtype, r.place("memtype")),
                   _page(page, r.place("page")), _stage(r),
                   _string(r.get("label", ""), r.place("label")), _optional_bool(r, "accessed"),
                   _optional_bool(r, "dirty"))


_HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")


def key_lines(text: str) -> dict[str, int]:
    """The line (1-based) of each table header and key in `text`, by key path (`map[2].perms`, `options.sum`),
    for error messages. A light scan of the usual TOML layout (headers, `key = value` lines); a key it
    misses is reported at its table's line."""
    out: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for n, line in enumerate(text.splitlines(), 1):
        if m := _HEADER.match(line):
            name = m.group(2).strip().strip("\"'")
            if m.group(1) == "[[":
                counts[name] = counts.get(name, -1) + 1
                table = f"{name}[{counts[name]}]"
                out.setdefault(name, n)
            else:
                table = name
            out.setdefault(table, n)
        elif m := _KEY.match(line):
            key = m.group(1).strip('"')
            out.setdefault(f"{table}.{key}" if table else key, n)
    return out


def _line_of(lines: Mapping[str, int], key: str) -> int:
    """The line of `key`, else of the nearest enclosing table that has one (0: none)."""
    while key:
        if key in lines:
            return lines[key]
        parent = key.rpartition(".")[0]
        key = parent if parent or not key.endswith("]") else key.rpartition("[")[0]   # map[1] → map (inline)
    return 0


__all__ = ["AccessSpec", "FaultSpec", "MapSpec", "Place", "Spec", "SpecError", "key_lines", "parse_spec", "read_spec",
           "size_value"]
