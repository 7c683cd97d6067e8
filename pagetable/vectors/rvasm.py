"""A minimal RV64I + Zicsr + privileged-instruction assembler.

Just enough RISC-V to write the bare-metal probe stub used by
:mod:`pagetable.vectors.qemu_riscv`; no compressed instructions, so every
instruction is 4 bytes and every address is known when it is emitted.

References (RISC-V ISA Manual, Volume I "Unprivileged", version 20191213):

* Section 2.2 "Base Instruction Formats" and 2.3 "Immediate Encoding
  Variants": the R/I/S/B/U/J layouts, declared once in :data:`FORMATS`.
* Sections 2.4-2.8 (integer computational, control transfer, loads and
  stores, FENCE, ECALL), Chapter 5 (RV64I additions), Chapter 9 (Zicsr) and
  Chapter 24 "RV32/64G Instruction Set Listings" (Table 24.1 opcode map) for
  opcode/funct values.
* Chapter 25 "RISC-V Assembly Programmer's Handbook" (Table 25.1 ABI
  register names, Tables 25.2-25.3 pseudo-instructions ``li``, ``la``, ``j``,
  ``csrr`` ...).

And Volume II "Privileged", version 20211203, Section 3.3.2 (MRET),
Section 4.2.1 (SFENCE.VMA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CSRS", "FORMATS", "REGISTERS", "AsmError", "Assembler", "Format"]


class AsmError(ValueError):
    """An operand is out of range, a register or label is unknown, etc."""


# ---------------------------------------------------------------------------
# Registers and CSRs
# ---------------------------------------------------------------------------

#: ABI register names (Volume I, Table 25.1) -> x-register number.
REGISTERS: Final[dict[str, int]] = {
    "zero": 0,
    "ra": 1,
    "sp": 2,
    "gp": 3,
    "tp": 4,
    "t0": 5,
    "t1": 6,
    "t2": 7,
    "s0": 8,
    "fp": 8,
    "s1": 9,
    **{f"a{i}": 10 + i for i in range(8)},
    **{f"s{i}": 16 + i for i in range(2, 12)},
    **{f"t{i}": 25 + i for i in range(3, 7)},
}

#: CSR numbers used by the stub (Privileged spec, Section 2.2, Tables 2.2-2.5).
CSRS: Final[dict[str, int]] = {
    "sstatus": 0x100,
    "satp": 0x180,
    "mstatus": 0x300,
    "misa": 0x301,
    "medeleg": 0x302,
    "mideleg": 0x303,
    "mie": 0x304,
    "mtvec": 0x305,
    "mscratch": 0x340,
    "mepc": 0x341,
    "mcause": 0x342,
    "mtval": 0x343,
    "mip": 0x344,
    "mtinst": 0x34A,
    "mtval2": 0x34B,
    "hstatus": 0x600,
    "hedeleg": 0x602,
    "hideleg": 0x603,
    "hgatp": 0x680,
    "vsstatus": 0x200,
    "vsatp": 0x280,
    "pmpcfg0": 0x3A0,
    "pmpaddr0": 0x3B0,
    "mhartid": 0xF14,
}


def reg(name: str) -> int:
    """Return the x-register number of an ABI name (``"t0"``) or of ``"x5"``."""
    if name in REGISTERS:
        return REGISTERS[name]
    if name.startswith("x") and name[1:].isdigit() and int(name[1:]) < 32:
        return int(name[1:])
    raise AsmError(f"unknown register {name!r}")


def csr_number(csr: str | int) -> int:
    """Return a CSR number from its name or pass a number through (12 bits)."""
    num = CSRS.get(csr) if isinstance(csr, str) else csr
    if num is None or not 0 <= num < 4096:
        raise AsmError(f"unknown CSR {csr!r}")
    return num


# ---------------------------------------------------------------------------
# The six base formats (Volume I, Sections 2.2-2.3)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """One base instruction format.

    ``fields`` names the register/function fields present, with their bit
    position; ``imm`` lists ``(imm_hi, imm_lo, inst_lo)`` slices: immediate
    bits ``imm_hi..imm_lo`` land at instruction bit ``inst_lo`` upwards.
    ``imm_bits``/``imm_align`` give the signed immediate's width and the
    number of low bits that must be zero (B/J offsets are multiples of 2,
    U immediates are multiples of 4096).
    """

    name: str
    fields: tuple[tuple[str, int, int], ...]  # (field, lsb, width)
    imm: tuple[tuple[int, int, int], ...]
    imm_bits: int
    imm_align: int

    def encode(self, opcode: int, imm: int = 0, **fields: int) -> int:
        """Pack ``opcode``, the named fields and ``imm`` into a 32-bit word."""
        word = opcode & 0x7F
        for fname, lsb, width in self.fields:
            value = fields.pop(fname, 0)
            if not 0 <= value < (1 << width):
                raise AsmError(f"{self.name}-type {fname}={value} out of range")
            word |= value << lsb
        if fields:
            raise AsmError(f"{self.name}-type has no field(s) {sorted(fields)}")
        if self.imm:
            lo, hi = -(1 << (self.imm_bits - 1)), 1 << (self.imm_bits - 1)
            if not lo <= imm < hi or imm & ((1 << self.imm_align) - 1):
                raise AsmError(f"{self.name}-type immediate {imm:#x} out of range")
            for imm_hi, imm_lo, inst_lo in self.imm:
                width = imm_hi - imm_lo + 1
                word |= ((imm >> imm_lo) & ((1 << width) - 1)) << inst_lo
        elif imm:
            raise AsmError(f"{self.name}-type takes no immediate")
        return word


_RD, _F3, _RS1, _RS2, _F7 = ("rd", 7, 5), ("funct3", 12, 3), ("rs1", 15, 5), ("rs2", 20, 5), ("funct7", 25, 7)

#: Volume I, Sections 2.2 (R/I/S/U) and 2.3 (B/J immediate scrambling).
FORMATS: Final[dict[str, Format]] = {
    "R": Format("R", (_RD, _F3, _RS1, _RS2, _F7), (), 0, 0),
    "I": Format("I", (_RD, _F3, _RS1), ((11, 0, 20),), 12, 0),
    "S": Format("S", (_F3, _RS1, _RS2), ((11, 5, 25), (4, 0, 7)), 12, 0),
    "B": Format("B", (_F3, _RS1, _RS2), ((12, 12, 31), (10, 5, 25), (4, 1, 8), (11, 11, 7)), 13, 1),
    "U": Format("U", (_RD,), ((31, 12, 12),), 32, 12),
    "J": Format("J", (_RD,), ((20, 20, 31), (10, 1, 21), (11, 11, 20), (19, 12, 12)), 21, 1),
}

# Major opcodes (Volume I, Table 24.1 "RISC-V base opcode map").
_OP_LUI, _OP_AUIPC, _OP_JAL, _OP_JALR = 0x37, 0x17, 0x6F, 0x67
_OP_BRANCH, _OP_LOAD, _OP_STORE = 0x63, 0x03, 0x23
_OP_IMM, _OP, _OP_MISC_MEM, _OP_SYSTEM = 0x13, 0x33, 0x0F, 0x73

#: R-type ALU operations: name -> (funct3, funct7) (Volume I, Section 2.4.2).
_ALU_R: Final[dict[str, tuple[int, int]]] = {
    "add": (0, 0x00),
    "sub": (0, 0x20),
    "sll": (1, 0x00),
    "slt": (2, 0x00),
    "sltu": (3, 0x00),
    "xor": (4, 0x00),
    "srl": (5, 0x00),
    "sra": (5, 0x20),
    "or": (6, 0x00),
    "and": (7, 0x00),
}
#: I-type ALU operations: name -> funct3 (Volume I, Section 2.4.1).
_ALU_I: Final[dict[str, int]] = {
    "addi": 0,
    "slti": 2,
    "sltiu": 3,
    "xori": 4,
    "ori": 6,
    "andi": 7,
}
#: RV64 shifts by immediate: name -> (funct3, imm[11:6]) (Volume I, Section 5.2).
_SHIFT_I: Final[dict[str, tuple[int, int]]] = {
    "slli": (1, 0x00),
    "srli": (5, 0x00),
    "srai": (5, 0x10),
}
#: Loads / stores: name -> funct3 (Volume I, Sections 2.6 and 5.3).
_LOADS: Final[dict[str, int]] = {
    "lb": 0,
    "lh": 1,
    "lw": 2,
    "ld": 3,
    "lbu": 4,
    "lhu": 5,
    "lwu": 6,
}
_STORES: Final[dict[str, int]] = {"sb": 0, "sh": 1, "sw": 2, "sd": 3}
#: Conditional branches: name -> funct3 (Volume I, Section 2.5).
_BRANCHES: Final[dict[str, int]] = {
    "beq": 0,
    "bne": 1,
    "blt": 4,
    "bge": 5,
    "bltu": 6,
    "bgeu": 7,
}
#: Zicsr: name -> funct3 (Volume I, Section 9.1); immediate forms are +4.
_CSR_OPS: Final[dict[str, int]] = {"csrrw": 1, "csrrs": 2, "csrrc": 3}


@dataclass
class _Fixup:
    """A PC-relative reference to a label, patched in :meth:`Assembler.assemble`."""

    offset: int  # byte offset of the instruction in the output
    label: str
    kind: str  # "B", "J", "auipc_hi" or "addi_lo"
    anchor: int  # offset of the instruction the PC-relative value is computed from


Target = str | int  # a label name, or a byte offset relative to the instruction


class Assembler:
    """Accumulates instructions and data; :meth:`assemble` returns the bytes.

    Branch/jump targets may be label names (forward references allowed) or
    signed byte offsets.  The output is position independent as long as only
    PC-relative label references (branches, ``jal``, ``la``) are used.
    """

    def __init__(self) -> None:
        """Start with an empty program."""
        self._buf = bytearray()
        self._labels: dict[str, int] = {}
        self._fixups: list[_Fixup] = []

    # -- bookkeeping -------------------------------------------------------

    @property
    def pc(self) -> int:
        """Byte offset of the next instruction or datum."""
        return len(self._buf)

    def label(self, name: str) -> None:
        """Define ``name`` at the current offset."""
        if name in self._labels:
            raise AsmError(f"label {name!r} defined twice")
        self._labels[name] = self.pc

    def _emit(self, word: int) -> None:
        if self.pc % 4:
            raise AsmError("instruction not 4-byte aligned (call align(4))")
        self._buf += word.to_bytes(4, "little")

    def _fmt(self, fmt: str, opcode: int, imm: int = 0, **fields: int) -> None:
        self._emit(FORMATS[fmt].encode(opcode, imm, **fields))

    def _target(self, target: Target, kind: str, anchor: int | None = None) -> int:
        """Return an offset now, or 0 plus a fixup when ``target`` is a label."""
        if isinstance(target, int):
            return target
        anc = self.pc if anchor is None else anchor
        self._fixups.append(_Fixup(self.pc, target, kind, anc))
        return 0

    # -- data --------------------------------------------------------------

    def data(self, blob: bytes) -> None:
        """Emit raw bytes."""
        self._buf += blob

    def dword(self, value: int) -> None:
        """Emit a little-endian 64-bit value (signed or unsigned)."""
        self._buf += (value & (2**64 - 1)).to_bytes(8, "little")

    def align(self, n: int) -> None:
        """Pad with zero bytes to a multiple of ``n`` (a power of two)."""
        self._buf += bytes(-self.pc % n)

    # -- R / I / S / B / U / J instructions -----------------------------------

    def _r(self, op: str, rd: str, rs1: str, rs2: str) -> None:
        f3, f7 = _ALU_R[op]
        self._fmt("R", _OP, rd=reg(rd), funct3=f3, rs1=reg(rs1), rs2=reg(rs2), funct7=f7)

    def add(self, rd: str, rs1: str, rs2: str) -> None:
        """ADD (Volume I, Section 2.4.2)."""
        self._r("add", rd, rs1, rs2)

    def sub(self, rd: str, rs1: str, rs2: str) -> None:
        """SUB (Volume I, Section 2.4.2)."""
        self._r("sub", rd, rs1, rs2)

    def or_(self, rd: str, rs1: str, rs2: str) -> None:
        """OR (Volume I, Section 2.4.2)."""
        self._r("or", rd, rs1, rs2)

    def and_(self, rd: str, rs1: str, rs2: str) -> None:
        """AND (Volume I, Section 2.4.2)."""
        self._r("and", rd, rs1, rs2)

    def xor(self, rd: str, rs1: str, rs2: str) -> None:
        """XOR (Volume I, Section 2.4.2)."""
        self._r("xor", rd, rs1, rs2)

    def sltu(self, rd: str, rs1: str, rs2: str) -> None:
        """SLTU (Volume I, Section 2.4.2)."""
        self._r("sltu", rd, rs1, rs2)

    def _i(self, op: str, rd: str, rs1: str, imm: int) -> None:
        self._fmt("I", _OP_IMM, imm, rd=reg(rd), funct3=_ALU_I[op], rs1=reg(rs1))

    def addi(self, rd: str, rs1: str, imm: int) -> None:
        """ADDI (Volume I, Section 2.4.1)."""
        self._i("addi", rd, rs1, imm)

    def andi(self, rd: str, rs1: str, imm: int) -> None:
        """ANDI (Volume I, Section 2.4.1)."""
        self._i("andi", rd, rs1, imm)

    def ori(self, rd: str, rs1: str, imm: int) -> None:
        """ORI (Volume I, Section 2.4.1)."""
        self._i("ori", rd, rs1, imm)

    def xori(self, rd: str, rs1: str, imm: int) -> None:
        """XORI (Volume I, Section 2.4.1)."""
        self._i("xori", rd, rs1, imm)

    def _shift(self, op: str, rd: str, rs1: str, shamt: int) -> None:
        f3, hi6 = _SHIFT_I[op]
        if not 0 <= shamt < 64:
            raise AsmError(f"shift amount {shamt} out of range")
        self._fmt("I", _OP_IMM, (hi6 << 6) | shamt, rd=reg(rd), funct3=f3, rs1=reg(rs1))

    def slli(self, rd: str, rs1: str, shamt: int) -> None:
        """SLLI, RV64 6-bit shift amount (Volume I, Section 5.2)."""
        self._shift("slli", rd, rs1, shamt)

    def srli(self, rd: str, rs1: str, shamt: int) -> None:
        """SRLI, RV64 6-bit shift amount (Volume I, Section 5.2)."""
        self._shift("srli", rd, rs1, shamt)

    def srai(self, rd: str, rs1: str, shamt: int) -> None:
        """SRAI, RV64 6-bit shift amount (Volume I, Section 5.2)."""
        self._shift("srai", rd, rs1, shamt)

    def _load(self, op: str, rd: str, offset: int, rs1: str) -> None:
        self._fmt("I", _OP_LOAD, offset, rd=reg(rd), funct3=_LOADS[op], rs1=reg(rs1))

    def ld(self, rd: str, offset: int, rs1: str) -> None:
        """LD ``rd, offset(rs1)`` (Volume I, Section 5.3)."""
        self._load("ld", rd, offset, rs1)

    def lw(self, rd: str, offset: int, rs1: str) -> None:
        """LW ``rd, offset(rs1)`` (Volume I, Section 2.6)."""
        self._load("lw", rd, offset, rs1)

    def lbu(self, rd: str, offset: int, rs1: str) -> None:
        """LBU ``rd, offset(rs1)`` (Volume I, Section 2.6)."""
        self._load("lbu", rd, offset, rs1)

    def _store(self, op: str, rs2: str, offset: int, rs1: str) -> None:
        self._fmt("S", _OP_STORE, offset, funct3=_STORES[op], rs1=reg(rs1), rs2=reg(rs2))

    def sd(self, rs2: str, offset: int, rs1: str) -> None:
        """SD ``rs2, offset(rs1)`` (Volume I, Section 5.3)."""
        self._store("sd", rs2, offset, rs1)

    def sw(self, rs2: str, offset: int, rs1: str) -> None:
        """SW ``rs2, offset(rs1)`` (Volume I, Section 2.6)."""
        self._store("sw", rs2, offset, rs1)

    def sb(self, rs2: str, offset: int, rs1: str) -> None:
        """SB ``rs2, offset(rs1)`` (Volume I, Section 2.6)."""
        self._store("sb", rs2, offset, rs1)

    def _branch(self, op: str, rs1: str, rs2: str, target: Target) -> None:
        off = self._target(target, "B")
        self._fmt("B", _OP_BRANCH, off, funct3=_BRANCHES[op], rs1=reg(rs1), rs2=reg(rs2))

    def beq(self, rs1: str, rs2: str, target: Target) -> None:
        """BEQ (Volume I, Section 2.5)."""
        self._branch("beq", rs1, rs2, target)

    def bne(self, rs1: str, rs2: str, target: Target) -> None:
        """BNE (Volume I, Section 2.5)."""
        self._branch("bne", rs1, rs2, target)

    def blt(self, rs1: str, rs2: str, target: Target) -> None:
        """BLT (Volume I, Section 2.5)."""
        self._branch("blt", rs1, rs2, target)

    def bge(self, rs1: str, rs2: str, target: Target) -> None:
        """BGE (Volume I, Section 2.5)."""
        self._branch("bge", rs1, rs2, target)

    def bltu(self, rs1: str, rs2: str, target: Target) -> None:
        """BLTU (Volume I, Section 2.5)."""
        self._branch("bltu", rs1, rs2, target)

    def bgeu(self, rs1: str, rs2: str, target: Target) -> None:
        """BGEU (Volume I, Section 2.5)."""
        self._branch("bgeu", rs1, rs2, target)

    def lui(self, rd: str, imm: int) -> None:
        """LUI; ``imm`` is the full value (a signed multiple of 4096) (Section 2.4.1)."""
        self._fmt("U", _OP_LUI, imm, rd=reg(rd))

    def auipc(self, rd: str, imm: int) -> None:
        """AUIPC; ``imm`` is the full offset (a multiple of 4096) (Section 2.4.1)."""
        self._fmt("U", _OP_AUIPC, imm, rd=reg(rd))

    def jal(self, rd: str, target: Target) -> None:
        """JAL (Volume I, Section 2.5.1)."""
        off = self._target(target, "J")
        self._fmt("J", _OP_JAL, off, rd=reg(rd))

    def jalr(self, rd: str, rs1: str, offset: int = 0) -> None:
        """JALR (Volume I, Section 2.5.1)."""
        self._fmt("I", _OP_JALR, offset, rd=reg(rd), funct3=0, rs1=reg(rs1))

    # -- Zicsr (Volume I, Chapter 9) -----------------------------------------

    def _csr(self, op: str, rd: str, csr: str | int, src: int, imm_form: bool) -> None:
        f3 = _CSR_OPS[op] + (4 if imm_form else 0)
        if imm_form and not 0 <= src < 32:
            raise AsmError(f"CSR immediate {src} out of range 0..31")
        # The CSR number occupies the I-type immediate field, unsigned.
        num = csr_number(csr)
        self._fmt("I", _OP_SYSTEM, num - 4096 if num >= 2048 else num, rd=reg(rd), funct3=f3, rs1=src)

    def csrrw(self, rd: str, csr: str | int, rs1: str) -> None:
        """CSRRW (Volume I, Section 9.1)."""
        self._csr("csrrw", rd, csr, reg(rs1), False)

    def csrrs(self, rd: str, csr: str | int, rs1: str) -> None:
        """CSRRS (Volume I, Section 9.1)."""
        self._csr("csrrs", rd, csr, reg(rs1), False)

    def csrrc(self, rd: str, csr: str | int, rs1: str) -> None:
        """CSRRC (Volume I, Section 9.1)."""
        self._csr("csrrc", rd, csr, reg(rs1), False)

    def csrrwi(self, rd: str, csr: str | int, uimm: int) -> None:
        """CSRRWI (Volume I, Section 9.1)."""
        self._csr("csrrw", rd, csr, uimm, True)

    def csrrsi(self, rd: str, csr: str | int, uimm: int) -> None:
        """CSRRSI (Volume I, Section 9.1)."""
        self._csr("csrrs", rd, csr, uimm, True)

    def csrrci(self, rd: str, csr: str | int, uimm: int) -> None:
        """CSRRCI (Volume I, Section 9.1)."""
        self._csr("csrrc", rd, csr, uimm, True)

    # -- fences and privileged instructions ---------------------------------

    def fence(self, pred: int = 0b1111, succ: int = 0b1111) -> None:
        """FENCE pred, succ (default iorw, iorw) (Volume I, Section 2.7)."""
        self._fmt("I", _OP_MISC_MEM, (pred << 4) | succ, rd=0, funct3=0, rs1=0)

    def _system(self, funct7: int, rs2: int, rs1: str = "zero") -> None:
        # ECALL/EBREAK/xRET/WFI/SFENCE.VMA are R-type with opcode SYSTEM, funct3 0.
        self._fmt("R", _OP_SYSTEM, rd=0, funct3=0, rs1=reg(rs1), rs2=rs2, funct7=funct7)

    def ecall(self) -> None:
        """ECALL (Volume I, Section 2.8)."""
        self._system(0x00, 0)

    def mret(self) -> None:
        """MRET (Privileged spec, Section 3.3.2)."""
        self._system(0x18, 0b00010)

    def wfi(self) -> None:
        """WFI (Privileged spec, Section 3.3.3)."""
        self._system(0x08, 0b00101)

    def sfence_vma(self, rs1: str = "zero", rs2: str = "zero") -> None:
        """SFENCE.VMA rs1, rs2 (Privileged spec, Section 4.2.1)."""
        self._system(0x09, reg(rs2), rs1)

    def hfence_gvma(self, rs1: str = "zero", rs2: str = "zero") -> None:
        """HFENCE.GVMA rs1, rs2 (Privileged spec, hypervisor extension, "Hypervisor Memory-Management
        Fence Instructions")."""
        self._system(0x31, reg(rs2), rs1)

    def hlv_d(self, rd: str, rs1: str) -> None:
        """HLV.D rd, (rs1): a load as VS/VU-mode (hstatus.SPVP) through vsatp and hgatp (hypervisor
        extension, "Hypervisor Virtual-Machine Load and Store Instructions"); funct3 = 100."""
        self._fmt("R", _OP_SYSTEM, rd=reg(rd), funct3=4, rs1=reg(rs1), rs2=0, funct7=0x36)

    def hsv_d(self, rs2: str, rs1: str) -> None:
        """HSV.D rs2, (rs1): the matching store."""
        self._fmt("R", _OP_SYSTEM, rd=0, funct3=4, rs1=reg(rs1), rs2=reg(rs2), funct7=0x37)

    # -- pseudo-instructions (Volume I, Chapter 25) ------------------------

    def nop(self) -> None:
        """NOP = ADDI zero, zero, 0."""
        self.addi("zero", "zero", 0)

    def mv(self, rd: str, rs: str) -> None:
        """MV rd, rs = ADDI rd, rs, 0."""
        self.addi(rd, rs, 0)

    def j(self, target: Target) -> None:
        """J target = JAL zero, target."""
        self.jal("zero", target)

    def beqz(self, rs: str, target: Target) -> None:
        """BEQZ rs, target = BEQ rs, zero, target."""
        self.beq(rs, "zero", target)

    def bnez(self, rs: str, target: Target) -> None:
        """BNEZ rs, target = BNE rs, zero, target."""
        self.bne(rs, "zero", target)

    def csrr(self, rd: str, csr: str | int) -> None:
        """CSRR rd, csr = CSRRS rd, csr, zero."""
        self.csrrs(rd, csr, "zero")

    def csrw(self, csr: str | int, rs: str) -> None:
        """CSRW csr, rs = CSRRW zero, csr, rs."""
        self.csrrw("zero", csr, rs)

    def csrs(self, csr: str | int, rs: str) -> None:
        """CSRS csr, rs = CSRRS zero, csr, rs."""
        self.csrrs("zero", csr, rs)

    def csrc(self, csr: str | int, rs: str) -> None:
        """CSRC csr, rs = CSRRC zero, csr, rs."""
        self.csrrc("zero", csr, rs)

    def li(self, rd: str, value: int) -> None:
        """Load any 64-bit constant (signed or unsigned) into ``rd``.

        Built from LUI/ADDI/SLLI only (no ADDIW): the value is split
        recursively into a sign-extended 12-bit low part plus a shifted
        remainder, the usual expansion of the ``li`` pseudo-instruction.
        """
        if not -(2**63) <= value < 2**64:
            raise AsmError(f"li constant {value:#x} does not fit 64 bits")
        if value >= 2**63:
            value -= 2**64
        self._li(rd, value)

    def _li(self, rd: str, value: int) -> None:
        if -2048 <= value < 2048:
            self.addi(rd, "zero", value)
            return
        if -(2**31) <= value < 2**31 - 2048:
            lo = ((value + 2048) & 0xFFF) - 2048
            hi = value - lo
            # LUI sign-extends bit 31; hi fits 32 signed bits here.
            self.lui(rd, hi)
            if lo:
                self.addi(rd, rd, lo)
            return
        lo = ((value + 2048) & 0xFFF) - 2048
        rest = (value - lo) >> 12
        shift = 12
        while rest & 1 == 0:
            rest >>= 1
            shift += 1
        self._li(rd, rest)
        self.slli(rd, rd, shift)
        if lo:
            self.addi(rd, rd, lo)

    def la(self, rd: str, label: str) -> None:
        """LA rd, label = AUIPC rd, %pcrel_hi(label); ADDI rd, rd, %pcrel_lo(label)."""
        anchor = self.pc
        self._target(label, "auipc_hi", anchor)
        self.auipc(rd, 0)
        self._target(label, "addi_lo", anchor)
        self.addi(rd, rd, 0)

    # -- output --------------------------------------------------------------

    def address_of(self, label: str) -> int:
        """Byte offset of a defined label."""
        if label not in self._labels:
            raise AsmError(f"undefined label {label!r}")
        return self._labels[label]

    def assemble(self) -> bytes:
        """Resolve label references and return the program bytes."""
        out = bytearray(self._buf)
        for fx in self._fixups:
            delta = self.address_of(fx.label) - fx.anchor
            word = int.from_bytes(out[fx.offset : fx.offset + 4], "little")
            lo = ((delta + 2048) & 0xFFF) - 2048
            if fx.kind in ("B", "J"):
                word |= FORMATS[fx.kind].encode(0, delta)
            elif fx.kind == "auipc_hi":
                if not -(2**31) <= delta - lo < 2**31:
                    raise AsmError(f"la target {fx.label!r} too far")
                word |= FORMATS["U"].encode(0, delta - lo)
            else:  # addi_lo
                word |= FORMATS["I"].encode(0, lo)
            out[fx.offset : fx.offset + 4] = word.to_bytes(4, "little")
        return bytes(out)
