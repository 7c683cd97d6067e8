"""The RISC-V address-translation rules, step by step as the privileged spec's "Virtual Address
Translation Process" (Sv39 section; Sv48/Sv57 use the same algorithm with more levels), with Svnapot,
Svpbmt, Svade and Svadu.

Per level i (the generic walker does step 2's fetch and its access fault, and the final PMA check):
3. V=0, or R=0 with W=1, or any reserved bit or encoding set → page fault. Reserved here: bits 60:54;
   PBMT without Svpbmt, PBMT=3 with it; N without Svnapot; on non-leaf PTEs D, A, U, N and PBMT (the spec
   reserves them; Spike, Sail and QEMU fault on them); N on a leaf unless i=0 and PPN[3:0]=1000 (64 KiB).
4. R=X=0: pointer to the next level; at i=0 → page fault.
5. Leaf: R/W/X/U against the access, privilege, SUM and MXR → page fault. S-mode never executes U pages;
   S-mode reads/writes U pages only with SUM; MXR makes X pages readable.
6. i>0 and PPN[i-1:0] ≠ 0 → misaligned superpage, page fault (PPN[0] is 10 bits in Sv32, 9 elsewhere).
7. A=0, or D=0 on a store: Svade → page fault; Svadu → hardware sets them (the walker only reports success).
8. PA = PPN[LEVELS-1:i] with VPN[i-1:0] and the page offset from the VA (Svnapot: PPN[3:0] from VPN[0]).
VAs must be sign-extended from bit 38/47/56, else page fault (reported at the root level).

Effective permissions (`Step.carry`, bits 3 * privilege + access): RISC-V decides them at the leaf alone
(non-leaf PTEs carry no permissions), from R/W/X/U, SUM and MXR as in step 5, less every access step 7
faults on (Svade: all of them without A, writes without D), and none where the PTE is malformed. The
memory type is the PBMT field (Svpbmt): PMA (the platform's attributes: `MemoryType.DEFAULT`), NC or IO.

G-stage (`RiscvRules.gstage(hgatp)`, hypervisor extension "Guest Physical Address Translation"): the same
steps over Sv39x4/Sv48x4/Sv57x4 (RV32: Sv32x4, selected by an `Hgatp32`) with every access checked as a
U-mode access (so leaves need U=1; SUM plays no part), MXR meaning the HS-level sstatus.MXR (explicit loads
only: `implicit()`), guest-physical addresses zero-extended (a wider GPA faults), and page faults reported
as guest-page faults. Two stages' memory types (Svpbmt with the hypervisor extension): a VS-stage PBMT other
than PMA overrides the G-stage's.
What each fault reports (scause, stval, htval, htinst) is in `faults`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from ... import args
from ...errors import InvalidArgument, InvalidArgumentType
from ...format import EntryKind, Level
from ...lanes import Flag, Small, Word, bit, first, narrow, not_, u8, u64, where
from ...translation import ALL_PERMS, Access, FaultKind, MemoryType, Outcome, Reason, Regime, Region, Step
from . import faults
from .entry import PBMT_RESERVED, PPN_MASK, PTE, A, D, G, R, RiscvCodec, U, V, W, X
from .regs import Hgatp, Satp, Vsatp

U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

_N = PTE.mask("N")
_RESERVED = PTE.mask("Reserved")


@dataclass(frozen=True)
class RiscvOptions:
    """The CSR bits and extensions that change a RISC-V walk."""

    sum: bool = False                                 # mstatus/sstatus.SUM
    mxr: bool = False                                 # mstatus/sstatus.MXR
    ad: Literal["svade", "svadu"] = "svade"           # A/D=0: fault (Svade) or hardware update (Svadu)
    svnapot: bool = False
    svpbmt: bool = False

    def __post_init__(self) -> None:
        _check_options(self)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _check_options(options: RiscvOptions | HypervisorOptions) -> None:
    """Every status bit a bool and `ad` one of the two names: a typo is never a silent Svadu."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name == "ad":
            if value not in ("svade", "svadu"):
                raise InvalidArgument(f"ad must be 'svade' or 'svadu', not {args.describe(value)}")
        else:
            args.boolean(value, f.name)


def _low_ppn(level: Level) -> int:
    """PPN[i-1:0]: the bits a level-i superpage's PPN must have clear (step 6): those naming 4 KiB pages
    within its span (9 bits a level in Sv39/Sv48/Sv57, 10 in Sv32: a 4 MiB megapage needs PPN[0] = 0)."""
    return (level.span >> 12) - 1


class RiscvRules:
    """`WalkRules` for Sv39/Sv48/Sv57 (and Bare) selected by a satp (or vsatp) value; `gstage(hgatp)` gives
    the G-stage rules for Sv39x4/Sv48x4/Sv57x4."""

    def __init__(self, satp: int | Satp | Hgatp, options: RiscvOptions | None = None) -> None:
        self.atp: Satp | Hgatp = satp if isinstance(satp, Satp | Hgatp) else Satp.decode(satp)
        if options is not None and not isinstance(options, RiscvOptions):
            raise InvalidArgumentType(f"RISC-V walk options are RiscvOptions, not {type(options).__name__}")
        self.options = options or RiscvOptions()
        self.guest = isinstance(self.atp, Hgatp)
        fmt = self.atp.format
        if fmt is not None and fmt.entry_size == 4 and (self.options.svpbmt or self.options.svnapot):
            raise InvalidArgument(f"{fmt.name} PTEs have no PBMT or N field: Svpbmt and Svnapot are RV64 extensions")
        register = "hgatp" if self.guest else "vsatp" if isinstance(self.atp, Vsatp) else "satp"
        if fmt is not None:               # entries are decoded (flags, memory types) as these options say
            fmt = fmt.with_codec(RiscvCodec(svpbmt=self.options.svpbmt, gstage=self.guest,
                                            pte=fmt.codec.layout_for(EntryKind.PAGE, fmt.page_size)))
        self.regime = Regime(fmt.name if fmt else "Bare", () if fmt is None else
                             (Region(register, fmt, self.atp.root),))

    @classmethod
    def gstage(cls, hgatp: int | Hgatp, options: RiscvOptions | None = None) -> RiscvRules:
        """The G-stage rules selected by an hgatp value."""
        return cls(hgatp if isinstance(hgatp, Hgatp) else Hgatp.decode(hgatp), options)

    def fault_kind(self, reason: Reason) -> FaultKind:
        if reason in faults.ACCESS_FAULT_REASONS:
            return faults.ACCESS_FAULT
        return faults.GUEST_PAGE_FAULT if self.guest else faults.PAGE_FAULT

    def syndrome(self, t: Outcome, access: Small, priv: Small, stage2: object | None) -> dict[str, Word]:
        return faults.syndrome(t, access, self.guest, self.guest or stage2 is not None, self.atp.xlen)

    def combine(self, stage1: Small, stage2: Small, leaf2: Word) -> Small:
        """Svpbmt under the hypervisor extension (these are the G-stage's rules): the VS-stage's PBMT, unless
        it is PMA, overrides the G-stage's."""
        return cast(Small, where(stage1 == MemoryType.DEFAULT, stage2, stage1))

    def stage2_privilege(self, priv: Small, carry: Word) -> Small:
        """The G-stage checks every access as U-mode whatever the privilege: pass it on unchanged."""
        return priv

    def step(self, region: Region, depth: int, pte: Word, access: Small, priv: Small, carry: Word) -> Step:
        opt = self.options
        level = region.fmt.levels[depth]
        i = level.arch_level
        low = narrow(pte, V | R | W | X | U | G | A | D)          # the flag bits, in a byte
        v, r, w, x, u = bit(low, V), bit(low, R), bit(low, W), bit(low, X), bit(low, U)
        a, d, napot = bit(low, A), bit(low, D), bit(pte, _N)
        leaf = r | x
        ppn = PTE.extract(pte, "PPN")
        pbmt = PTE.extract(pte, "PBMT")
        # step 3: the reserved bits and encodings
        reserved = bit(pte, _RESERVED) | ((pbmt == PBMT_RESERVED) if opt.svpbmt else (pbmt != 0))
        reserved |= napot if not opt.svnapot else napot & leaf & ((i != 0) | ((ppn & 0xF) != 8))
        reserved |= not_(leaf) & (d | a | u | napot | (pbmt != 0))
        # step 5: the rights of the leaf (perm_bit layout, in bytes), then this lane's access against them
        kinds = u8(r | (opt.mxr & x)) | u8(w) << 1 | u8(x) << 2
        if self.guest:                                   # every G-stage access is checked as U-mode
            perms = (kinds | kinds << 3) * u8(u)
        else:                                            # S-mode: U pages only with SUM, never executed
            sup = kinds * u8(not_(u)) | ((kinds & 3) * u8(u) if opt.sum else 0)
            perms = sup | (kinds * u8(u)) << 3
        perms = perms & narrow(carry, ALL_PERMS)
        lane_bit = access if self.guest else priv * 3 + access
        # step 6, where a superpage may be misaligned
        misaligned = leaf & ((ppn & _low_ppn(level)) != 0) if i else False
        # step 7: Svade faults where A/D need setting, so the accesses that would need them do not translate
        svade = opt.ad == "svade"
        unset = not_(a) | ((access == Access.WRITE) & not_(d))
        reason = first(pte, (not_(v), Reason.INVALID), (not_(r) & w, Reason.W_WITHOUT_R),
                       (reserved, Reason.RESERVED), (not_(leaf) & (i == 0), Reason.NON_LEAF_AT_LAST_LEVEL),
                       (leaf & ((perms >> lane_bit) & 1 == 0), Reason.PERMISSION),
                       (misaligned, Reason.MISALIGNED_SUPERPAGE), (leaf & unset & svade, Reason.ACCESSED_DIRTY))
        if svade:
            perms = perms & u8(a) * ALL_PERMS & (0b101101 | u8(d) * 0b010010)
        # step 8: the PA keeps the VA's offset in the (super)page, and VPN[0][3:0] in a Svnapot 64 KiB page
        offset = level.span - 1 | (u64(napot & leaf) * 0xF000 if opt.svnapot else 0)
        # the carry: the leaf's rights (meaningful where the access translates); pointers pass it on
        return Step(reason, leaf, offset, where(leaf, perms, carry), region.fmt.codec.memory_type_np(pte, i != 0))

    def judged_bits(self, region: Region, depth: int) -> int:
        """`step` reads every bit but the PPN's, and of the PPN only PPN[i-1:0] (step 6) and, with Svnapot,
        PPN[3:0]."""
        napot = 0xF if self.options.svnapot else 0
        return (((1 << 64) - 1) & ~PPN_MASK) | ((_low_ppn(region.fmt.levels[depth]) | napot) << PTE["PPN"].lsb)

    def written(self, region: Region, depth: int, pte: Word, leaf: Flag, access: Small) -> Word:
        """Svadu (step 7): hardware sets A in a leaf, and D too on a store. Svade faults instead (in `step`),
        so nothing is written back."""
        if self.options.ad == "svade":
            return pte
        return pte | where(leaf, A | where(access == Access.WRITE, D, 0), 0)

    def implicit(self) -> RiscvRules:
        """The rules for a VS-stage table access through this G-stage: MXR off. The hypervisor extension
        ("Two-Stage Address Translation"): sstatus.MXR makes execute-only pages readable by explicit loads;
        the implicit reads of VS-stage page tables are not explicit loads, so an execute-only G-stage page
        under a VS-stage table is a guest-page fault whatever MXR says."""
        return RiscvRules(self.atp, dataclasses.replace(self.options, mxr=False))


@dataclass(frozen=True)
class HypervisorOptions:
    """The CSR bits and extensions that change a RISC-V walk with V=1 (VS/VU-mode, HLV/HSV): vsstatus.SUM
    and MXR for the VS-stage, the HS-level sstatus.MXR for both stages, and the hart's extensions."""

    vs_sum: bool = False                              # vsstatus.SUM
    vs_mxr: bool = False                              # vsstatus.MXR
    hs_mxr: bool = False                              # sstatus.MXR (HS-level)
    ad: Literal["svade", "svadu"] = "svade"
    svnapot: bool = False
    svpbmt: bool = False

    def __post_init__(self) -> None:
        _check_options(self)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def two_stage_rules(vsatp: int | Vsatp, hgatp: int | Hgatp,
                    options: HypervisorOptions | None = None) -> tuple[RiscvRules, RiscvRules]:
    """The rules of accesses with V=1 (VS/VU-mode, or HLV/HSV), for `Walker.nested`: guest VA → GPA by the
    VS-stage (vsatp), every VS-stage table fetch and the final GPA → HPA by the G-stage (hgatp).

    Hypervisor extension, "Two-Stage Address Translation" (`options`, default all off and Svade): the VS-stage
    uses vsstatus.SUM (`vs_sum`), and makes X pages readable when vsstatus.MXR or the HS-level sstatus.MXR
    is set; the G-stage only honours sstatus.MXR (`hs_mxr`), and only for explicit loads
    (`RiscvRules.implicit`). VS-stage table fetches are checked by the G-stage as reads and, with Svadu, a VS
    leaf whose A/D bits hardware sets is checked as a write (the spec: "permissions and the need to set A
    and/or D bits at the G-stage level are checked as though for an implicit load or store, not for the
    original access type"); a G-stage fault is a guest-page fault reported with `stage == 2` and the
    faulting GPA, for the original access type. An int register value is decoded as RV64's; for RV32 give
    `Vsatp32` and `Hgatp32` values."""
    if options is not None and not isinstance(options, HypervisorOptions):
        raise InvalidArgumentType(f"two-stage walk options are HypervisorOptions, not {type(options).__name__}")
    opt = options or HypervisorOptions()
    vs = vsatp if isinstance(vsatp, Vsatp) else Vsatp.decode(vsatp)
    g = hgatp if isinstance(hgatp, Hgatp) else Hgatp.decode(hgatp)
    if vs.xlen != g.xlen:
        raise InvalidArgument(f"an RV{vs.xlen} vsatp with an RV{g.xlen} hgatp: both stages are one hart's XLEN "
                              "(give Vsatp32 and Hgatp32 for RV32)")
    g_options = RiscvOptions(mxr=opt.hs_mxr, ad=opt.ad, svnapot=opt.svnapot, svpbmt=opt.svpbmt)
    vs_options = dataclasses.replace(g_options, sum=opt.vs_sum, mxr=opt.vs_mxr or opt.hs_mxr)
    return RiscvRules(vs, vs_options), RiscvRules.gstage(g, g_options)
