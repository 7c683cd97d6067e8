"""Declared bit layouts: one table of named fields per entry or register format.

Each architecture declares its entry and control-register formats once, as a `Layout` of `Field`s (name,
least-significant bit, width, meaning, optional names of encodings). Everything else is derived from that
one declaration: scalar get/set/build, vectorised numpy get/set over whole tables, a construct `Struct`
that parses and builds the little-endian bytes, and `explain(raw)` that names every field of a raw value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import bitstring
import construct
import numpy as np
import numpy.typing as npt

from . import args
from .errors import InvalidArgument
from .lanes import Word

U64 = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class Field:
    """Bits [lsb, lsb + width) of a value, with its manual name and meaning."""

    name: str
    lsb: int
    width: int
    doc: str
    encodings: Mapping[int, str] = field(default_factory=dict)

    @property
    def mask(self) -> int:
        """The field's bits in place."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def bits(self) -> str:
        """The bit range as the manuals write it: "63" or "53:10"."""
        return str(self.lsb) if self.width == 1 else f"{self.msb}:{self.lsb}"


@dataclass(frozen=True)
class FieldValue:
    """One line of `Layout.explain`."""

    field: Field
    value: int

    @property
    def meaning(self) -> str:
        """The encoding's name; "reserved" for a value a field with named encodings does not list."""
        encodings = self.field.encodings
        return encodings.get(self.value, "reserved" if encodings else "")

    def render(self) -> str:
        """`bits name = value (binary) meaning`, aligned for printing."""
        f = self.field
        binary = bitstring.Bits(uint=self.value, length=f.width).bin if f.width <= 8 else ""
        shown = f"{self.value:#x}" if f.width > 8 else f"{self.value} ({binary})" if f.width > 1 else str(self.value)
        extra = f"  {self.meaning}" if self.meaning else ""
        return f"[{f.bits:>5}] {f.name:<8} = {shown}{extra}   # {f.doc}"


class Layout:
    """A declared bit layout of a `width`-bit little-endian value (a PTE, satp, ...)."""

    def __init__(self, name: str, width: int, fields: list[Field], source: str) -> None:
        self.name = name
        self.width = width
        self.source = source
        self.fields: tuple[Field, ...] = tuple(sorted(fields, key=lambda f: f.lsb))
        self._by_name = {f.name: f for f in self.fields}
        taken = 0
        for f in self.fields:
            if f.mask & taken or f.msb >= width:
                raise ValueError(f"{name}: field {f.name} overlaps another or exceeds {width} bits")
            taken |= f.mask
        self.struct = self._build_struct()

    def _build_struct(self) -> Any:
        """The construct declaration derived from the field table (unnamed gaps become `_gap_<msb>_<lsb>`)."""
        parts: list[Any] = []
        pos = self.width
        for f in reversed(self.fields):
            if f.msb + 1 < pos:
                parts.append(f"_gap_{pos - 1}_{f.msb + 1}" / construct.BitsInteger(pos - f.msb - 1))
            parts.append(f.name / construct.BitsInteger(f.width))
            pos = f.lsb
        if pos:
            parts.append(f"_gap_{pos - 1}_0" / construct.BitsInteger(pos))
        return construct.ByteSwapped(construct.BitStruct(*parts))

    def __getitem__(self, name: str) -> Field:
        """The field called `name`; InvalidArgument (listing the fields) for a name the layout lacks."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise InvalidArgument(f"{self.name} has no field {name!r} (fields: "
                                  f"{', '.join(f.name for f in self.fields)})") from None

    def mask(self, *names: str) -> int:
        """The union of the named fields' masks."""
        out = 0
        for n in names:
            out |= self[n].mask
        return out

    # ---------------------------------------------------------------- scalar
    def get(self, raw: int, name: str) -> int:
        f = self[name]
        return (args.integer(raw, f"{self.name} value") >> f.lsb) & ((1 << f.width) - 1)

    def set(self, raw: int, name: str, value: int) -> int:
        f = self[name]
        value = args.integer(value, f"{self.name}.{name}")
        if not 0 <= value < 1 << f.width:
            raise InvalidArgument(f"{self.name}.{name} is {f.width} bits wide; {value:#x} does not fit")
        return (raw & ~f.mask) | (value << f.lsb)

    def build(self, **values: int) -> int:
        """A raw value with the given fields set and every other bit clear."""
        raw = 0
        for name, value in values.items():
            raw = self.set(raw, name, value)
        return raw

    def unknown_bits(self, raw: int) -> int:
        """Bits of `raw` that no field declares."""
        declared = self.mask(*self._by_name)
        return raw & ~declared & ((1 << self.width) - 1)

    # ------------------------------------------------------------ vectorised
    def extract(self, raw: Word, name: str) -> Word:
        """The field per lane, for a column of raws or one (`lanes`); unchecked, for the walk rules' inner
        loop, which have their raws from memory."""
        f = self[name]
        return (raw >> f.lsb) & ((1 << f.width) - 1)

    def get_np(self, raw: U64, name: str) -> U64:
        f = self[name]
        if not isinstance(raw, np.ndarray) or raw.dtype != np.uint64:
            raw = args.u64_array(raw, f"{self.name} values")
        return (raw >> np.uint64(f.lsb)) & np.uint64((1 << f.width) - 1)

    def set_np(self, raw: U64, name: str, value: U64 | int) -> U64:
        f = self[name]
        v = args.u64_array(value, f"{self.name}.{name} values")
        if np.any(v >> np.uint64(f.width)):
            raise InvalidArgument(f"{self.name}.{name}: a value does not fit in {f.width} bits")
        return (raw & np.uint64(~f.mask & (1 << 64) - 1)) | (v << np.uint64(f.lsb))

    # ------------------------------------------------------------- construct
    def parse(self, raw: int) -> dict[str, int]:
        """Every field's value (construct parse of the little-endian bytes), gaps included."""
        data = raw.to_bytes(self.width // 8, "little")
        return {k: v for k, v in self.struct.parse(data).items() if not k.startswith("_io")}

    def to_bytes(self, **values: int) -> bytes:
        """Build the little-endian bytes of a value from field values (construct build); others are 0."""
        full = {k: 0 for k in self.parse(0)}
        full.update(values)
        return bytes(self.struct.build(full))

    # --------------------------------------------------------------- explain
    def check(self, raw: object) -> int:
        """`raw` as an int, or InvalidArgument if it is not a `width`-bit unsigned value (a negative value or
        a wider one is an error, never truncated)."""
        return args.integer(raw, f"{self.name} value", 0, 1 << self.width)

    def explain(self, raw: int) -> list[FieldValue]:
        """Name every field of `raw` (a `width`-bit value), most significant first."""
        raw = self.check(raw)
        return [FieldValue(f, self.get(raw, f.name)) for f in reversed(self.fields)]

    def format(self, raw: int) -> str:
        """`explain` as printable lines, headed by the raw value and the manual section."""
        raw = self.check(raw)
        lines = [f"{self.name} {raw:#0{self.width // 4 + 2}x}  ({self.source})"]
        lines += ["  " + fv.render() for fv in self.explain(raw)]
        unknown = self.unknown_bits(raw)
        if unknown:
            runs, bit = [], 0
            while unknown >> bit:
                if unknown >> bit & 1:
                    top = bit
                    while unknown >> (top + 1) & 1:
                        top += 1
                    runs.append(str(bit) if top == bit else f"{top}:{bit}")
                    bit = top
                bit += 1
            lines.append(f"  bits {', '.join(reversed(runs))} are set but belong to no field (reserved: zero)")
        return "\n".join(lines)
