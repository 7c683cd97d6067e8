"""The `pagetable-vectors/2` file format (documented in docs/vectors.md); version 1 files are still read.

A vector set is a directory: one or more raw memory images, `vectors.json` (registers, walker options,
cases with their expected PA, or fault and the syndrome the hardware reports for it), and a short
README.txt. Version 2 added the syndrome; a version 1 file has none, and is checked without it. All
addresses and register values are hex strings, so 64-bit values survive every JSON reader. Reading
validates everything and raises `VectorsError` with the offending field's path named (`cases[3].stage`),
never a traceback from deep inside: unknown keys (a misspelt `SUM`), values of the wrong type
(`"stage": true`), keys that do not apply (`level` on a translation), the same image file at two bases,
and files that are not JSON (binary, nested 100,000 deep, integers of thousands of digits) are all errors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string  # json's own, in C
from typing import Any, TextIO, overload

import numpy as np
import numpy.typing as npt

from .. import args
from ..errors import InvalidArgument, PagetableError
from ..listing import permissions
from ..physmem import PhysMem
from ..translation import MemoryType
from ..walker import Access, FaultKind, Privilege, Reason, Translations

SCHEMA = "pagetable-vectors/2"
SCHEMA_V1 = "pagetable-vectors/1"
ACCESSES = ("read", "write", "execute")
PRIVILEGES = ("supervisor", "user")
MAX_JSON = 1 << 30
"""The largest vectors.json read: a million cases (the most `generate` writes) take about 300 MB."""
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
TOP_KEYS = ("schema", "arch", "mode", "memory", "registers", "options", "cases")
MEMORY_KEYS = ("file", "base", "sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")
COMMON_CASE_KEYS = ("va", "access", "privilege", "stage", "gpa", "label", "reason")
CASE_KEYS = {"pa": (*COMMON_CASE_KEYS, "pa", "perms", "memtype"),
             "fault": (*COMMON_CASE_KEYS, "fault", "level", "implicit", "syndrome")}
_REGISTER = re.compile(r"[a-z][a-z0-9_]{0,31}")
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Lanes = tuple[U64, U8, U8]
"""Cases' VAs, access codes and privilege codes: the walker's lane arrays (`Walker.translate_many`)."""


class VectorsError(PagetableError):
    """A vector set that cannot be written or read as `pagetable-vectors/1`."""


@dataclass(frozen=True)
class Case:
    """One translation: `pa` when it succeeds, else `fault` and `level` (the manual's level number).

    Two-stage (hypervisor) modes add `stage` to faults (1: the VS-stage decided, 2: the G-stage) and `gpa`:
    the guest-physical address a translation reached, or the one whose G-stage walk faulted (the final GPA,
    or the address of a VS-stage entry); it is what mtval2/htval report, shifted right by 2, for a
    guest-page fault. `implicit` marks a G-stage fault on a VS-stage table access (htinst/mtinst then hold a
    pseudoinstruction) rather than on the final address. `syndrome` (version 2; None in a version 1 file):
    what the hardware reports for a fault, register by register (RISC-V: scause, stval, htval, htinst).
    `perms` and `memtype` (translations of the architectures that record them: x86-64): the walk's
    effective permissions (a `perm_bit` mask, written `S:rw- U:r--`) and the page's memory type (`wb`).
    `label` names the feature the case exercises and `reason` the walker's reason; both are informative."""

    va: int
    access: str
    privilege: str
    pa: int | None = None
    fault: str | None = None
    level: int | None = None
    stage: int | None = None
    gpa: int | None = None
    implicit: bool = False
    label: str = ""
    reason: str = ""
    syndrome: dict[str, int] | None = None
    perms: int | None = None
    memtype: str | None = None

    def outcome(self, syndrome: bool = True, attributes: bool = False) -> tuple[object, ...]:
        """What the case expects, without its informative fields: (pa, fault, level, stage, gpa, implicit,
        syndrome), the last None unless `syndrome`; with `attributes`, (perms, memtype) after them."""
        out = (self.pa, self.fault, self.level, self.stage, self.gpa, self.implicit,
               self.syndrome if syndrome else None)
        return (*out, self.perms, self.memtype) if attributes else out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"va": f"{self.va:#x}", "access": self.access, "privilege": self.privilege}
        if self.pa is not None:
            out["pa"] = f"{self.pa:#x}"
            if self.perms is not None:
                out["perms"] = permissions(self.perms)
            if self.memtype is not None:
                out["memtype"] = self.memtype
        else:
            out["fault"] = self.fault
            out["level"] = self.level
        if self.stage is not None:
            out["stage"] = self.stage
        if self.gpa is not None:
            out["gpa"] = f"{self.gpa:#x}"
        if self.implicit:
            out["implicit"] = True
        if self.syndrome is not None:
            out["syndrome"] = {k: f"{v:#x}" for k, v in self.syndrome.items()}
        if self.reason:
            out["reason"] = self.reason
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str, version: int = 2, arch: str = "riscv64") -> Case:
        """A case of a vector set for `arch`, whose fault kinds are the ones that architecture registered."""
        if not isinstance(obj, dict):
            raise VectorsError(f"{where}: a case must be an object")
        if ("pa" in obj) == ("fault" in obj):
            raise VectorsError(f"{where}: a case has exactly one of 'pa' and 'fault'")
        kind = "pa" if "pa" in obj else "fault"
        allowed = CASE_KEYS[kind] if version == 2 else tuple(k for k in CASE_KEYS[kind] if k != "syndrome")
        check_keys(obj, allowed, where, f"in a case with '{kind}'")
        access = _choice(obj, "access", ACCESSES, where)
        privilege = _choice(obj, "privilege", PRIVILEGES, where)
        va = _hex(obj, "va", where)
        stage = obj.get("stage")
        if stage is not None and (type(stage) is not int or stage not in (1, 2)):
            raise VectorsError(f"{where}.stage must be 1 or 2, not {stage!r}")
        gpa = _hex(obj, "gpa", where) if "gpa" in obj else None
        label, reason = _text(obj, "label", where), _text(obj, "reason", where)
        if kind == "pa":
            perms = _perms(obj, where) if "perms" in obj else None
            memtype = _choice(obj, "memtype", MEMORY_TYPES, where) if "memtype" in obj else None
            return cls(va, access, privilege, pa=_hex(obj, "pa", where), stage=stage, gpa=gpa, label=label,
                       reason=reason, perms=perms, memtype=memtype)
        implicit = obj.get("implicit", False)
        if not isinstance(implicit, bool):
            raise VectorsError(f"{where}.implicit must be true or false, not {implicit!r}")
        level = obj.get("level")
        if type(level) is not int or not -8 <= level < 16:
            raise VectorsError(f"{where}.level must be a level number (an integer from -8 to 15), not "
                               f"{args.describe(level)}")
        fault = _choice(obj, "fault", FaultKind.values(arch), where)
        if fault == "guest-page-fault" and stage == 1:
            raise VectorsError(f"{where}: a guest-page fault comes from stage 2, not 1")
        syndrome = _syndrome(obj, where) if version == 2 else None
        return cls(va, access, privilege, fault=fault, level=level, stage=stage, gpa=gpa, implicit=implicit,
                   label=label, reason=reason, syndrome=syndrome)


ACCESS_CODES = {a: int(Access[a.upper()]) for a in ACCESSES}      # a case's names as the walker's codes
PRIVILEGE_CODES = {p: int(Privilege[p.upper()]) for p in PRIVILEGES}
_ACCESS_NAMES = {code: a for a, code in ACCESS_CODES.items()}      # and back, looked up once
_PRIVILEGE_NAMES = {code: p for p, code in PRIVILEGE_CODES.items()}
_REASON_LABELS = {int(r): r.label for r in Reason}
_MEMTYPE_LABELS = {int(m): m.label for m in MemoryType}
MEMORY_TYPES = tuple(m.label for m in MemoryType if m is not MemoryType.NONE)
"""The memory types a translation's `memtype` names (`MemoryType.label`: `wb`, `uc-`, `default`, ...)."""
_PERMS = re.compile(r"S:[r-][w-][x-] U:[r-][w-][x-]")
_CHUNK = 4096
"""Cases built at a time when the collection is iterated (the columns of a chunk become Python lists first:
indexing numpy arrays one element at a time costs more than the whole chunk's lists)."""


def _read_only(column: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A view of `column` that cannot be written through."""
    view = column.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Cases(Sequence[Case]):
    """Cases as columns (how a generated vector set holds them: one `Case` object per case took a second per
    100,000); `cases[n]` and iteration build each `Case` when it is asked for. `access` and `privilege` hold
    the walker's codes, `label` indexes `labels`, and `outcome` is the walker's answer for every case as
    `Walker.translate_many` gives it (its `va` column is the cases' VAs). `fault_kinds` names the fault kind
    of each (reason, stage) the outcome has; `two_stage`: the walk had a G-stage, so the cases have `stage`
    and `gpa`; `attributes`: translations carry their `perms` and `memtype`. The columns are read-only
    views. Cases equal any sequence of equal `Case`s in the same order (a list read back from vectors.json)."""

    access: U8
    privilege: U8
    label: npt.NDArray[np.intp]
    labels: tuple[str, ...]
    outcome: Translations
    fault_kinds: Mapping[tuple[int, int], str]
    two_stage: bool
    attributes: bool = False

    def __post_init__(self) -> None:
        o = self.outcome
        if not len(self.access) == len(self.privilege) == len(self.label) == len(o):
            raise InvalidArgument("the columns of Cases must have one entry per case")
        for name in ("access", "privilege", "label"):           # frozen: set once, here
            object.__setattr__(self, name, _read_only(getattr(self, name)))
        columns = {f.name: _read_only(getattr(o, f.name)) for f in dataclasses.fields(o) if f.name != "syndrome"}
        object.__setattr__(self, "outcome", Translations(**columns, syndrome={k: _read_only(v) for k, v in
                                                                              o.syndrome.items()}))

    @property
    def va(self) -> U64:
        return self.outcome.va

    def lanes(self) -> Lanes:
        """The cases' VAs, access codes and privilege codes (the columns themselves)."""
        return self.va, self.access, self.privilege

    def __len__(self) -> int:
        return len(self.outcome)

    @overload
    def __getitem__(self, index: int) -> Case: ...

    @overload
    def __getitem__(self, index: slice) -> Cases: ...

    def __getitem__(self, index: int | slice) -> Case | Cases:
        if isinstance(index, slice):
            lanes = np.arange(len(self))[index]
            return dataclasses.replace(self, access=self.access[lanes], privilege=self.privilege[lanes],
                                       label=self.label[lanes], outcome=self.outcome.take(lanes))
        n = operator.index(index)
        if not -len(self) <= n < len(self):
            raise IndexError(f"case {n} of {len(self)}")
        n %= len(self)
        return self._build(n, n + 1)[0]

    def __iter__(self) -> Iterator[Case]:
        for start in range(0, len(self), _CHUNK):
            yield from self._build(start, start + _CHUNK)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def _build(self, start: int, stop: int) -> list[Case]:
        """Cases `start` to `stop` (at most): the PA, or the fault kind, level and syndrome, with stage, GPA
        and `implicit` in the two-stage modes."""
        part = slice(start, stop)
        o = self.outcome
        vas, accesses, privileges = o.va[part].tolist(), self.access[part].tolist(), self.privilege[part].tolist()
        labels = self.label[part].tolist()
        reasons, stages, levels = o.reason[part].tolist(), o.stage[part].tolist(), o.level[part].tolist()
        pas, gpas, implicit = o.pa[part].tolist(), o.gpa[part].tolist(), o.implicit[part].tolist()
        perms = o.perms[part].tolist() if self.attributes else None
        memtypes = o.memtype[part].tolist() if self.attributes else None
        syndrome = {k: v[part].tolist() for k, v in o.syndrome.items()}
        out = []
        for n, reason in enumerate(reasons):
            va, a, p = vas[n], _ACCESS_NAMES[accesses[n]], _PRIVILEGE_NAMES[privileges[n]]
            label, stage = self.labels[labels[n]], stages[n]
            gpa = gpas[n] if self.two_stage and (reason == Reason.OK or stage == 2) else None
            if reason == Reason.OK:
                out.append(Case(va, a, p, pa=pas[n], gpa=gpa, label=label, reason=_REASON_LABELS[reason],
                                perms=None if perms is None else perms[n],
                                memtype=None if memtypes is None else _MEMTYPE_LABELS[memtypes[n]]))
            else:
                out.append(Case(va, a, p, fault=self.fault_kinds[reason, stage], level=levels[n],
                                stage=stage if self.two_stage else None, gpa=gpa, implicit=bool(implicit[n]),
                                label=label, reason=_REASON_LABELS[reason],
                                syndrome={k: v[n] for k, v in syndrome.items()}))
        return out


def _syndrome(obj: Mapping[str, Any], where: str) -> dict[str, int]:
    """A fault's `syndrome`: an object of register names (lower case) to hex values (version 2: required)."""
    value = obj.get("syndrome")
    if not isinstance(value, dict) or not value:
        raise VectorsError(f"{where}.syndrome must be an object of register values, not {args.describe(value)}")
    return _registers(value, f"{where}.syndrome")


def _perms(obj: Mapping[str, Any], where: str) -> int:
    """A translation's `perms`, written as `permissions` writes it (`S:rw- U:r--`), as a `perm_bit` mask."""
    value = obj.get("perms")
    if not isinstance(value, str) or not _PERMS.fullmatch(value):
        raise VectorsError(f"{where}.perms must be permissions like \"S:rw- U:r--\", not {args.describe(value)}")
    marks = value[2:5] + value[8:11]
    return sum(1 << n for n, ch in enumerate(marks) if ch != "-")


def check_keys(obj: Mapping[str, Any], allowed: Sequence[str], where: str, context: str = "") -> None:
    """VectorsError naming the first key of `obj` that is not in `allowed` (a misspelling is never ignored)."""
    for key in obj:
        if key not in allowed:
            raise VectorsError(f"{where}: unknown key {key!r}{' ' + context if context else ''} "
                               f"(expected {', '.join(allowed)})")


def check_registers(vs: VectorSet, names: Sequence[str], mode: str) -> None:
    """VectorsError unless a vector set's `registers` are exactly `names`, the registers mode `mode` reads."""
    check_keys(vs.registers, names, "registers", f"for mode {mode}")
    for reg in names:
        if reg not in vs.registers:
            raise VectorsError(f"registers.{reg} is missing (mode {mode} needs {', '.join(names)})")


def check_one_stage(vs: VectorSet, mode: str) -> None:
    """VectorsError naming the first case with a two-stage key (`stage`, `gpa`, `implicit`): a one-stage
    mode's cases have none."""
    for n, c in enumerate(vs.cases):
        for key, value in (("stage", c.stage), ("gpa", c.gpa), ("implicit", c.implicit or None)):
            if value is not None:
                raise VectorsError(f"cases[{n}].{key} applies to the two-stage modes, not {mode}")


def _at(where: str, key: str) -> str:
    """The path of `key` in `where`: `where.key`, or `where['key']` with the key escaped when it is not a
    plain name (a key of control characters must not break the one-line error)."""
    return f"{where}.{key}" if key.isidentifier() and key.isascii() else f"{where}[{key!r}]"


def _registers(regs: Mapping[str, Any], where: str) -> dict[str, int]:
    """`registers` (and a fault's `syndrome`): register names (lower case) to hex values."""
    for key in regs:
        if not isinstance(key, str) or not _REGISTER.fullmatch(key):
            raise VectorsError(f"{where}: {args.describe(key)} is not a register name")
    return {k: _hex(regs, k, where) for k in regs}


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str) or not value.isprintable():
        raise VectorsError(f"{_at(where, key)} must be printable text, not {args.describe(value)}")
    return value


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise VectorsError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise VectorsError(f"{name} is not a JSON number")


def _same_file(a: str, b: str) -> bool:
    """The same file (also through a link), or the same path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normpath(a) == os.path.normpath(b)


def json_text(value: Any, indent: str = "\n") -> str:
    """The text of json.dumps(value, indent=1), nested at `indent` (a newline, then a space per level).
    Strings, integers, objects with string keys and lists are encoded here, several times faster (json's
    encoder is pure Python when it indents: it took 90% of `VectorSet.write`); json encodes the rest
    (true, false, null, floats, {}, [], other keys)."""
    if isinstance(value, str):
        return _json_string(value)
    if type(value) is int:
        return repr(value)
    inner = indent + " "
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        return "{" + inner + ("," + inner).join([f"{_json_string(k)}: "             # most values are strings
                                                   f"{_json_string(v) if type(v) is str else json_text(v, inner)}"
                                                   for k, v in value.items()]) + indent + "}"
    if isinstance(value, list) and value:
        return "[" + inner + ("," + inner).join([json_text(v, inner) for v in value]) + indent + "]"
    return json.dumps(value, indent=1).replace("\n", indent)   # a JSON text has no newline in a string


def write_json(fh: TextIO, doc: Mapping[str, Any]) -> None:
    """json.dump(doc, fh, indent=1) for an object `doc` through json_text, a value of `doc` that is an
    iterator written as a list item by item (a vector set's cases: each case's dict is made, written
    and dropped, never all at once)."""
    if not doc:
        fh.write("{}")
        return
    for n, (key, value) in enumerate(doc.items()):
        fh.write(f"{',' if n else '{'}\n {_json_string(key)}: ")
        if not isinstance(value, Iterator):
            fh.write(json_text(value, "\n "))
            continue
        empty = True
        for item in value:
            fh.write(("[" if empty else ",") + "\n  " + json_text(item, "\n  "))
            empty = False
        fh.write("[]" if empty else "\n ]")
    fh.write("\n}")


def _hex(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, str) or not value.lower().startswith("0x"):
        raise VectorsError(f"{_at(where, key)} must be a hex string like \"0x80000000\", not {args.describe(value)}")
    if not _HEX.fullmatch(value):                      # int() would also take "0x_1" and "0x10 \n"
        raise VectorsError(f"{_at(where, key)} is not a hex number: {args.describe(value)}")
    out = int(value, 16)
    if not 0 <= out < 1 << 64:
        raise VectorsError(f"{_at(where, key)} does not fit in 64 bits")
    return out


def _choice(obj: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise VectorsError(f"{_at(where, key)} must be one of {', '.join(allowed)}, not {args.describe(value)}")
    return value


@dataclass
class VectorSet:
    """A memory image with registers, walker options and cases."""

    arch: str
    mode: str
    mem: PhysMem
    registers: dict[str, int]
    options: dict[str, Any]
    cases: Sequence[Case]                 # Cases when generated, a list when read
    notes: list[str] = field(default_factory=list)
    digests: list[tuple[str, str | None]] = field(default_factory=list)
    """When read: each image file and the SHA-256 vectors.json records for it (None in a file written
    before `memory[].sha256` was added)."""

    def lanes(self) -> Lanes:
        """The cases' VAs, access codes and privilege codes as walker lane arrays (a generated set's own
        columns)."""
        if isinstance(self.cases, Cases):
            return self.cases.lanes()
        return (np.fromiter((c.va for c in self.cases), np.uint64, len(self.cases)),
                np.fromiter((ACCESS_CODES[c.access] for c in self.cases), np.uint8, len(self.cases)),
                np.fromiter((PRIVILEGE_CODES[c.privilege] for c in self.cases), np.uint8, len(self.cases)))

    def faults(self) -> int:
        """How many cases expect a fault (counted in the columns when the set has them)."""
        if isinstance(self.cases, Cases):
            return len(self.cases) - int(np.count_nonzero(self.cases.outcome.ok))
        return sum(c.pa is None for c in self.cases)

    def to_json(self, files: list[tuple[str, int]]) -> dict[str, Any]:
        """The document vectors.json holds, with the images `files` ((name, base) pairs)."""
        return self._document(files, [c.to_json() for c in self.cases])

    def _document(self, files: list[tuple[str, int]], cases: Iterable[dict[str, Any]],
                  digests: Sequence[str] | None = None) -> dict[str, Any]:
        """The document, each image's entry with its SHA-256 when `digests` gives them (as `write` does)."""
        memory = [{"file": f, "base": f"{b:#x}"} for f, b in files]
        for entry, digest in zip(memory, digests or (), strict=digests is not None):
            entry["sha256"] = digest
        return {
            "schema": SCHEMA,
            "arch": self.arch,
            "mode": self.mode,
            "memory": memory,
            "registers": {k: f"{v:#x}" for k, v in self.registers.items()},
            "options": self.options,
            "cases": cases,
        }

    def write(self, out_dir: str | os.PathLike[str], readme: str) -> None:
        """Write mem*.bin, vectors.json and README.txt into `out_dir` (created if needed). The files are
        written beside it first and renamed into place, so a failure (a full disk) leaves what was there."""
        if not isinstance(out_dir, str | os.PathLike) or "\0" in os.fspath(out_dir) or not isinstance(readme, str):
            raise VectorsError("write takes a directory path and the README text")
        staging = None
        try:
            os.makedirs(out_dir, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=".pagetable-", dir=out_dir)
            files = self.mem.save(staging)
            with open(os.path.join(staging, "README.txt"), "w", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(readme)
            with open(os.path.join(staging, "vectors.json"), "w", encoding="utf-8") as fh:
                # each case's dict made, written and dropped (all of them at once kept the garbage
                # collector busy)
                digests = [hashlib.sha256(r.data.data).hexdigest() for r in self.mem.regions]   # the bytes saved
                write_json(fh, self._document(files, (c.to_json() for c in self.cases), digests))
                fh.write("\n")
            for name in [f for f, _ in files] + ["README.txt", "vectors.json"]:   # vectors.json last
                os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
        except (OSError, PagetableError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise VectorsError(f"cannot write vectors to {os.fspath(out_dir)!r}: {reason}") from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> VectorSet:
        """Read and validate a vector set directory."""
        if not isinstance(directory, str | os.PathLike) or "\0" in os.fspath(directory):
            raise VectorsError(f"a vector set is a directory path, not {args.describe(directory)}")
        path = os.path.join(directory, "vectors.json")
        try:
            info = os.stat(path)
        except OSError as exc:
            raise VectorsError(f"cannot read {path!r}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):             # a FIFO would block, /dev/zero never end
            raise VectorsError(f"{path}: not a regular file")
        if info.st_size > MAX_JSON:
            raise VectorsError(f"{path}: {info.st_size:,} bytes, more than a vector set's {MAX_JSON:,}")
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh, object_pairs_hook=_no_repeats, parse_constant=_no_constant)
        except OSError as exc:
            raise VectorsError(f"cannot read {path!r}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise VectorsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except UnicodeDecodeError:
            raise VectorsError(f"{path}: not a JSON text (it is not UTF-8)") from None
        except VectorsError as exc:                      # a repeated key, NaN or Infinity
            raise VectorsError(f"{path}: {exc}") from None
        except (ValueError, RecursionError) as exc:     # integers of thousands of digits, deep nesting
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            raise VectorsError(f"{path}: cannot be read as JSON ({what})") from None
        if not isinstance(doc, dict) or doc.get("schema") not in (SCHEMA, SCHEMA_V1):
            raise VectorsError(f"{path}: 'schema' must be {SCHEMA!r} (or {SCHEMA_V1!r})")
        version = 2 if doc["schema"] == SCHEMA else 1
        check_keys(doc, TOP_KEYS, path)
        for key in ("arch", "mode"):
            if not isinstance(doc.get(key), str):
                raise VectorsError(f"{path}: '{key}' must be a string")
        known = sorted({arch for arch, _ in FaultKind.registered()})
        if doc["arch"] not in known:
            raise VectorsError(f"{path}: arch {args.describe(doc['arch'])} is not supported ({', '.join(known)})")
        memory = doc.get("memory")
        if not isinstance(memory, list) or not memory:
            raise VectorsError(f"{path}: 'memory' must be a non-empty list")
        images: list[tuple[str, int]] = []
        digests: list[tuple[str, str | None]] = []
        for n, m in enumerate(memory):
            where = f"{path}: memory[{n}]"
            if not isinstance(m, dict) or not isinstance(m.get("file"), str):
                raise VectorsError(f"{where} needs a 'file'")
            check_keys(m, MEMORY_KEYS, where)
            name = m["file"]
            if "\0" in name or not name.isprintable():
                raise VectorsError(f"{where}.file {name!r} is not a file name")
            if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/") or \
                    os.path.normpath(name or ".") == ".":
                raise VectorsError(f"{where}.file {name!r} must name a file inside the vector directory")
            image = os.path.join(directory, name)
            inside = os.path.realpath(directory)
            if os.path.commonpath([inside, os.path.realpath(image)]) != inside:
                raise VectorsError(f"{where}.file {name!r} leads out of the vector directory (through a link)")
            for other, _ in images:
                if _same_file(other, image):
                    raise VectorsError(f"{where}.file {name!r} is the image of an earlier memory entry")
            images.append((image, _hex(m, "base", where)))
            digest = m.get("sha256")
            if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
                raise VectorsError(f"{where}.sha256 must be 64 lowercase hex digits, not {args.describe(digest)}")
            digests.append((name, digest))
        try:
            mem = PhysMem.load(images)
        except PagetableError as exc:
            raise VectorsError(f"{path}: {exc}") from None
        regs = doc.get("registers")
        if not isinstance(regs, dict):
            raise VectorsError(f"{path}: 'registers' must be an object")
        registers = _registers(regs, f"{path}: registers")
        options = doc.get("options", {})
        if not isinstance(options, dict):
            raise VectorsError(f"{path}: 'options' must be an object")
        raw_cases = doc.get("cases")
        if not isinstance(raw_cases, list):
            raise VectorsError(f"{path}: 'cases' must be a list")
        cases = [Case.from_json(c, f"{path}: cases[{n}]", version, doc["arch"]) for n, c in enumerate(raw_cases)]
        return cls(doc["arch"], doc["mode"], mem, registers, options, cases, digests=digests)
