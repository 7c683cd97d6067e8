"""Tests of the QEMU nested-paging harness (pagetable/vectors/x86_64/svm.py and svm.S).

Without QEMU: the VMCB's layout against AMD APM Vol. 2 Appendix B (Tables B-1 and B-2), its packing, the
segment attributes (15.5.1), the VMCB every probe shares (intercepts, NP_ENABLE, nCR3, the guest's
registers), the nested root slot, and -- with the binutils that assemble svm.S -- the stub's data: the
harness's guest and nested tables walked by the library's two-stage walker to the snippets, the host's
identity map, the case records, and the reading of result records.  With QEMU: CPUID reports SVM with
nested paging on TCG_CPU, and a CPU without SVM is refused.  The tests that need ``qemu-system-x86_64`` or
binutils skip without them, or fail when ``CI=true``.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from pagetable.arch.x86_64 import EFER, NPT4, NptRules, X86Rules
from pagetable.arch.x86_64.walk import PAGE_FAULT
from pagetable.flags import MappingFlags as F
from pagetable.frames import FrameAllocator
from pagetable.physmem import PhysMem
from pagetable.table import PageTable
from pagetable.vectors.qemu import QemuFailed
from pagetable.vectors.x86_64 import qemu as x86
from pagetable.vectors.x86_64 import svm
from pagetable.vectors.x86_64.layout import RAM_BASE
from pagetable.vectors.x86_64.svm import NptProbeCase, NptProbeResult
from pagetable.walker import Walker

from .conftest import require_qemu_x86, require_toolchain_x86

MiB = 1 << 20

# APM Vol. 2, Appendix B: Table B-1 (control area) and Table B-2 (state-save area, at 0x400), as printed.
APM_OFFSETS = {
    "INTERCEPT_EXCEPTIONS": (0x008, 4), "INTERCEPT_MISC": (0x00C, 8), "IOPM_BASE_PA": (0x040, 8),
    "MSRPM_BASE_PA": (0x048, 8), "ASID": (0x058, 4), "TLB_CONTROL": (0x05C, 1), "EXITCODE": (0x070, 8),
    "EXITINFO1": (0x078, 8), "EXITINFO2": (0x080, 8), "NP_CONTROL": (0x090, 8), "N_CR3": (0x0B0, 8),
    "ES": (0x400, 16), "CS": (0x410, 16), "SS": (0x420, 16), "DS": (0x430, 16), "CPL": (0x4CB, 1),
    "EFER": (0x4D0, 8), "CR4": (0x548, 8), "CR3": (0x550, 8), "CR0": (0x558, 8), "DR7": (0x560, 8),
    "DR6": (0x568, 8), "RFLAGS": (0x570, 8), "RIP": (0x578, 8), "RSP": (0x5D8, 8), "RAX": (0x5F8, 8),
    "G_PAT": (0x668, 8),
}


def test_vmcb_fields_are_where_appendix_b_puts_them() -> None:
    assert {name: (f.offset, f.size) for name, f in svm.VMCB_FIELDS.items()} == APM_OFFSETS
    spans = sorted((f.offset, f.offset + f.size) for f in svm.VMCB_FIELDS.values())
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))   # no overlap
    assert spans[-1][1] <= 4096


def test_pack_vmcb_puts_each_field_little_endian_at_its_offset() -> None:
    raw = svm.pack_vmcb({"EXITCODE": 0x400, "CPL": 3, "ASID": 1, "CS": bytes(range(16))})
    assert len(raw) == 4096
    assert struct.unpack_from("<Q", raw, 0x70)[0] == 0x400 and raw[0x4CB] == 3
    assert struct.unpack_from("<I", raw, 0x58)[0] == 1 and raw[0x410:0x420] == bytes(range(16))
    assert raw.count(0) == 4096 - 1 - 1 - 1 - 15                       # nothing else written
    with pytest.raises(ValueError, match="16 bytes"):
        svm.pack_vmcb({"CS": b"\0" * 8})
    with pytest.raises(OverflowError):
        svm.pack_vmcb({"CPL": 256})
    with pytest.raises(KeyError):
        svm.pack_vmcb({"NOT_A_FIELD": 0})


def test_segment_attributes_are_descriptor_bits_47_40_and_55_52() -> None:
    code = [svm.segment_attributes(x86.segment_descriptor(0xB, dpl, long=True)) for dpl in (0, 3)]
    data = [svm.segment_attributes(x86.segment_descriptor(0x3, dpl, big=True)) for dpl in (0, 3)]
    # type, S=1, DPL, P=1; L=1 (code) or D/B=1 (data); G=1
    assert code == [0xA9B, 0xAFB] and data == [0xC93, 0xCF3]


def test_the_shared_vmcb_enables_nested_paging_and_intercepts_what_the_stub_needs() -> None:
    state = svm.guest_state(0x123_4000, RAM_BASE + 0x5000)
    vmcb = svm.pack_vmcb(state)
    misc = struct.unpack_from("<Q", vmcb, 0x0C)[0]
    assert struct.unpack_from("<I", vmcb, 0x08)[0] == 0xFFFF_FFFF                   # every exception
    assert misc == 1 << 21 | 1 << 31 | 1 << 32 | 1 << 33        # INTn, shutdown, VMRUN, VMMCALL
    assert struct.unpack_from("<Q", vmcb, 0x90)[0] & 1 and struct.unpack_from("<Q", vmcb, 0xB0)[0] == RAM_BASE + 0x5000
    assert struct.unpack_from("<I", vmcb, 0x58)[0] != 0                             # ASID 0 is the host's
    assert struct.unpack_from("<Q", vmcb, 0x550)[0] == 0x123_4000
    efer = struct.unpack_from("<Q", vmcb, 0x4D0)[0]
    assert efer == EFER.mask("LME", "LMA", "NXE", "SVME")                           # 15.5.1: SVME=1
    assert struct.unpack_from("<Q", vmcb, 0x558)[0] == 0x8001_0033                  # PE MP ET NE WP PG
    assert struct.unpack_from("<HHIQ", vmcb, 0x410) == (0x08, 0xA9B, 0xFFFF_FFFF, 0)


def test_nested_slot_choice() -> None:
    image = bytearray(4096)
    assert svm.choose_nested_slot(bytes(image), RAM_BASE, 40) == 1          # 2^40: slots 0 and 1
    assert svm.choose_nested_slot(bytes(image), RAM_BASE, 48) == 511
    assert svm.choose_nested_slot(bytes(image), RAM_BASE, 40, [1 << 39]) == 0
    struct.pack_into("<Q", image, 8, 0x1007)
    assert svm.choose_nested_slot(bytes(image), RAM_BASE, 40) == 0
    with pytest.raises(ValueError, match="no nested root slot"):
        svm.choose_nested_slot(bytes(image), RAM_BASE, 40, [0x1000])


@pytest.mark.parametrize("case", [NptProbeCase(0x1004, "read"), NptProbeCase(0x1000, "jump"),
                                  NptProbeCase(0x1000, "read", "kernel"), NptProbeCase(-8, "read")])
def test_invalid_cases_rejected(case: NptProbeCase) -> None:
    require_toolchain_x86()
    layout = svm._plan(4096, 1)
    with pytest.raises(ValueError):
        svm.build_svm_stub(layout, 0x1000, RAM_BASE, [case], 5, 1)


def test_the_stub_maps_its_guest_page_through_both_stages_and_itself_identity() -> None:
    """The harness's guest and nested root entries, put in roots of a test image, take the library's
    two-stage walk to the snippets (a read-only user page: fetches and reads at CPL 3, no writes); the
    nested mapping of the stub region is writable (the guest walk writes A/D in the harness's guest
    tables); the host's tables map the stub region to itself."""
    require_toolchain_x86()
    cases = [NptProbeCase(0x8, "write", "user"), NptProbeCase(0x10, "execute")]
    layout = svm._plan(2 * MiB, len(cases))
    gslot, nslot = 300, 1
    stub = svm.build_svm_stub(layout, RAM_BASE, RAM_BASE + 0x1000, cases, gslot, nslot)
    base = layout.stub_base
    mem = PhysMem([(base, layout.stub_size), (RAM_BASE, 2 * MiB)])
    mem.write(base, stub.blob)
    nested = PageTable(NPT4, mem, FrameAllocator(mem, RAM_BASE + 0x1000, 0x10_0000))
    nested.map(RAM_BASE, RAM_BASE, 4096, F.READ | F.WRITE)                # the guest root's GPA
    mem.write_u64(nested.root_paddr + 8 * nslot, stub.nested_entry)
    mem.write_u64(RAM_BASE + 8 * gslot, stub.guest_entry)
    sym = svm.svm_program().symbols
    w = Walker(mem, X86Rules(RAM_BASE), stage2=Walker(mem, NptRules(nested.root_paddr)))
    snippet = x86.slot_base(gslot, False) + sym["snip_fetch"] - sym["guest_page"]
    t = w.translate(snippet, "execute", "user")
    assert (t.ok, t.pa, t.gpa) == (True, base + sym["snip_fetch"], (nslot << 39) + base + sym["snip_fetch"])
    assert w.translate(snippet, "read", "supervisor").ok
    assert w.translate(snippet, "write", "supervisor").fault == PAGE_FAULT
    # CPL 0 runs the snippets on the page after, a supervisor alias (SMEP forbids CPL 0 fetches from user pages)
    alias = svm._snippet_va("snip_fetch", x86.slot_base(gslot, False), "supervisor")
    t = w.translate(alias, "execute", "supervisor")
    assert alias == snippet + 4096 and (t.ok, t.pa) == (True, base + sym["snip_fetch"])
    assert w.translate(alias, "read", "user").fault == PAGE_FAULT
    state = Walker(mem, NptRules(nested.root_paddr)).translate((nslot << 39) + base + 0x3000, "write", "user")
    assert state.ok and state.pa == base + 0x3000
    host_cr3 = mem.read_u64(base + sym["state"])                              # ST_HOST_CR3, the first field
    host = Walker(mem, X86Rules(host_cr3)).translate(base + layout.stub_size - 8, "write", "supervisor")
    assert host.ok and host.pa == base + layout.stub_size - 8
    # The VMCB is the shared one; the case records name the snippets, the write's second run and CPL 3.
    vmcb = stub.blob.find(svm.pack_vmcb(svm.guest_state(RAM_BASE, RAM_BASE + 0x1000)))
    assert vmcb > 0 and vmcb % 4096 == 0
    records = svm._CASE.unpack(stub.blob, stub.blob.find(struct.pack("<Q", 0x8) + struct.pack(
        "<Q", svm._snippet_va("snip_read", x86.slot_base(gslot, False), "user"))))
    assert records["RIP2"] == svm._snippet_va("snip_write", x86.slot_base(gslot, False), "user") and records["CPL"] == 3
    assert records["CS"] >> 16 == 0xAFB and records["SS"] & 0xFFFF == x86.USER_DS | 3


def test_result_records_are_read_as_successes_or_exits() -> None:
    require_toolchain_x86()
    base = x86.slot_base(7, False)
    done = svm._snippet_va("read_done", base, "supervisor")

    def rec(code: int, rip: int, info1: int = 0, info2: int = 0, value: int = 0) -> dict[str, int]:
        return {"EXIT_CODE": code, "EXITINFO1": info1, "EXITINFO2": info2, "RIP": rip, "VALUE": value}

    read, fetch = NptProbeCase(0x4000, "read"), NptProbeCase(0x4000, "execute")
    assert svm._result(read, rec(svm.EXIT_VMMCALL, done, value=0xAB), base) == NptProbeResult(None, 0, 0, 0xAB)
    assert svm._result(read, rec(svm.EXIT_VMMCALL, done + 3), base).exit_code == svm.EXIT_VMMCALL
    assert svm._result(fetch, rec(svm.EXIT_INTN, 0x4000), base) == NptProbeResult(None, 0, 0, 0x4000)
    assert svm._result(fetch, rec(svm.EXIT_EXCP_BASE + 3, 0x4001), base).exit_code is None
    assert svm._result(fetch, rec(svm.EXIT_NPF, 0x4000, 0x1_0000_0015, 0x9000), base) == NptProbeResult(
        svm.EXIT_NPF, 0x1_0000_0015, 0x9000, 0x4000, 0x4000)


def _output(status: int, records: list[dict[str, int]]) -> bytes:
    header = svm._HEADER.pack({"MAGIC": svm._HEADER_MAGIC, "STATUS": status, "COUNT": len(records),
                               "EXT1_ECX": 4, "EXT1_EDX": 0, "EXT8_EAX": 0x3028, "EXTA_EDX": 1})
    return header + b"".join(svm._RESULT.pack(r) for r in records) + struct.pack("<Q", svm._TRAILER_MAGIC)


@pytest.mark.parametrize("code", [svm.EXIT_INVALID, svm._NO_EXIT, svm.EXIT_SHUTDOWN])
def test_a_guest_that_did_not_run_fails_the_run(code: int) -> None:
    raw = _output(0, [{"EXIT_CODE": code, "EXITINFO1": 0, "EXITINFO2": 0, "RIP": 0, "VALUE": 0}])
    with pytest.raises(QemuFailed, match="VMRUN"):
        svm._parse(raw, [NptProbeCase(0, "read")], b"", 1)


def test_bad_output_fails_and_no_svm_reports_features() -> None:
    case = [NptProbeCase(0, "read")]
    with pytest.raises(QemuFailed, match=r"^SVM stub output truncated: 8 bytes"):
        svm._parse(b"\0" * 8, case, b"", 1)
    with pytest.raises(QemuFailed, match=r"^SVM stub output has a bad header"):
        svm._parse(_output(0, []), case, b"", 1)                   # one case asked, none reported
    with pytest.raises(QemuFailed, match="truncated or malformed"):
        svm._parse(_output(0, [])[:-8], [], b"", 1)
    results, features = svm._parse(_output(1, [])[:svm._HEADER.size], [], b"", 1)
    assert results == [] and features == svm.NptFeatures(maxphyaddr=40, svm=True, npt=True)


def test_bad_roots_are_refused() -> None:
    require_qemu_x86()
    with pytest.raises(ValueError, match="nCR3"):
        svm.run_npt_probes(bytes(4096), 0, RAM_BASE + 0x1000, [NptProbeCase(0, "read")])
    with pytest.raises(ValueError, match="not mapped"):                      # an empty nested table
        svm.run_npt_probes(bytes(4096), 0, RAM_BASE, [NptProbeCase(0, "read")])


def test_tcg_has_svm_with_nested_paging_and_a_cpu_without_svm_is_refused() -> None:
    require_qemu_x86()
    assert svm.npt_features() == svm.NptFeatures(maxphyaddr=40, svm=True, npt=True)
    with pytest.raises(QemuFailed, match="no SVM"):
        svm.npt_features(cpu="max,svm=off")



def test_guest_modes_are_real_register_values() -> None:
    """The guest's CR0/CR4 for each GuestMode (15.5.1 loads them from the VMCB as they are) and the walk
    options the test gives the library for the same guest."""
    assert (svm.GuestMode().cr0, svm.GuestMode().cr4, svm.GuestMode().efer) == (0x8001_0033, 0x20, 0x1D00)
    chosen = svm.GuestMode(smep=True, smap=True, pke=True, nxe=False, ac=True, pkru=0x420)
    assert (chosen.cr4, chosen.efer, chosen.rflags) == (0x70_0020, 0x1500, 0x4_0002)      # SMEP|SMAP|PKE; no NXE
    o = chosen.options(40)
    assert (o.smep, o.smap, o.pke, o.pkru, o.nxe, o.ac) == (True, True, True, 0x420, False, True)
    assert (svm.GuestMode(wp=False).cr0, svm.GuestMode(la57=True).cr4) == (0x8000_0033, 0x1020)
    o = svm.GuestMode(la57=True, wp=False).options(40)
    assert (o.la57, o.wp, o.nxe, o.maxphyaddr) == (True, False, True, 40)
    vmcb = svm.pack_vmcb(svm.guest_state(0x5000, RAM_BASE, svm.GuestMode(la57=True, wp=False)))
    assert struct.unpack_from("<QQ", vmcb, 0x550) == (0x5000, 0x8000_0033)          # CR3, CR0
    assert struct.unpack_from("<Q", vmcb, 0x548)[0] == 0x1020                       # CR4: PAE, LA57
