/*
 * The QEMU probe stub: a bare-metal RV64 or RV32 program (XLEN, from the harness) that performs one real
 * S/U (or VS/VU) access per case through the MMU and records what the hart did.
 * pagetable/vectors/riscv/qemu.py assembles it with GNU binutils and appends its data (docs/qemu.md
 * describes the whole harness).
 *
 * RISC-V Privileged spec, version 20211203, and its hypervisor extension (Chapter 8).
 *
 * Build: riscv64-linux-gnu-as -march=rv64gc_zicsr_zifencei_h (RV32: -march=rv32gc_zicsr_zifencei_h
 * -mabi=ilp32) -mno-relax, ld -Ttext=0 --no-relax (RV32: -m elf32lriscv), objcopy -O binary.  The harness
 * passes with --defsym every number it shares with the stub (XLEN, the data layout below, the
 * mstatus/hstatus bits of pagetable/arch/riscv_sv39/csr.py), so each is declared once.
 *
 * Position independent: QEMU loads the stub at an address chosen per run (the generic loader's cpu-num
 * makes it hart 0's reset PC) and every address is formed pc-relative (lla = auipc + addi) or read from
 * the state block.  No compressed instructions (.option norvc): every instruction is 4 bytes.
 *
 * Data, 8-byte aligned after the code at label "state" (all u64, little-endian, offsets in bytes; RV32
 * reads and writes the low word of each field with lw/sw, REG_L/REG_S below, so the harness's layout is
 * the same for both XLENs and the high words keep what the harness put there):
 *   state block  ST_*   (STATE_SIZE bytes; its address is kept in mscratch)
 *   case records CASE_* (CASE_SIZE bytes each, from ST_CASE up to ST_CASE_END)
 *   output       header HDR_*, one result record RES_* (RESULT_SIZE bytes) per case, trailer;
 *                sent byte by byte to the UART from ST_OUT_START to ST_OUT_END.
 *
 * Registers: s0 = state block (reloaded from mscratch), s1 = case, s2 = result, a0 = va, a1 = mstatus
 * bits, a2 = value, a3/a4 = vsstatus/hstatus bits, t0-t2 scratch.  The trap handler clobbers only t5/t6,
 * and every path back from an access reloads its state from memory, because an execute probe runs
 * arbitrary code.  The H CSRs and instructions are used only when the state block's ST_HYP flag is set:
 * without the hypervisor extension they are illegal instructions.  On RV32 the V=1 loads and stores are
 * HLV.W/HSV.W (HLV.D/HSV.D are RV64 instructions), and MPV and GVA are in mstatush (bits 7 and 6: bits 39
 * and 38 of RV64's mstatus), set from the high word of a case's CASE_MSTATUS.
 */

        .ifndef ST_CAUSE
        .error "stub.S needs the harness's --defsym values (pagetable/vectors/riscv/qemu.py builds it)"
        .end
        .endif
        .if ACCESS_READ != 0
        .error "the stub tests a read as access kind 0"
        .endif

/* An XLEN-wide load or store of a field's low XLEN bits: ld/sd on RV64, lw/sw on RV32; and the XLEN-wide
 * hypervisor load and store (HLV_X, HSV_X). */
        .if XLEN == 64
        .macro REG_L reg, addr:vararg
        ld      \reg, \addr
        .endm
        .macro REG_S reg, addr:vararg
        sd      \reg, \addr
        .endm
        .macro HLV_X reg, addr:vararg
        hlv.d   \reg, \addr
        .endm
        .macro HSV_X reg, addr:vararg
        hsv.d   \reg, \addr
        .endm
        .elseif XLEN == 32
        .macro REG_L reg, addr:vararg
        lw      \reg, \addr
        .endm
        .macro REG_S reg, addr:vararg
        sw      \reg, \addr
        .endm
        .macro HLV_X reg, addr:vararg
        hlv.w   \reg, \addr
        .endm
        .macro HSV_X reg, addr:vararg
        hsv.w   \reg, \addr
        .endm
        .else
        .error "XLEN must be 32 or 64"
        .endif

/* QEMU "virt" machine (checked against QEMU 7.2). */
        .equ UART, 0x10000000           /* ns16550a, byte registers (regshift 0) */
        .equ UART_THR, 0                /* transmit holding register */
        .equ UART_LSR, 5                /* line status register */
        .equ LSR_THRE, 0x20             /* LSR bit 5: THR empty */
        .equ FINISHER, 0x100000         /* sifive_test */
        .equ FINISHER_PASS, 0x5555      /* power off, QEMU exit status 0 */

/* Section 3.7.1 "Physical Memory Protection CSRs": pmpcfg R (bit 0), W (1), X (2), A (4:3; 3 = NAPOT),
 * L (7).  pmpaddr all ones with A=NAPOT is the whole physical address space (the NAPOT range encoding). */
        .equ PMP_NAPOT_RWX, 0x1f        /* A=NAPOT, X, W, R; L=0 */

        .option norvc
        .text
        .globl _start

/* Mark the state block's trap record as "no trap". */
        .macro clear_trap
        li      t1, NO_TRAP
        REG_S   t1, ST_CAUSE(s0)
        REG_S   zero, ST_EPC(s0)
        REG_S   zero, ST_TVAL(s0)
        REG_S   zero, ST_TVAL2(s0)
        REG_S   zero, ST_TINST(s0)
        .endm

/* One access with the mstatus bits in a1 set (MPRV|MPP|SUM|MXR for loads/stores, Section 3.1.6.3 "Memory
 * Privilege in mstatus Register"; the HS-level SUM|MXR for HLV/HSV), cleared right after; a trap resumes
 * at \resume, where the handler has already cleared MPRV. */
        .macro guarded resume, access:vararg
        lla     t1, \resume
        REG_S   t1, ST_RESUME(s0)
        csrs    mstatus, a1
        \access
        csrc    mstatus, a1
        .endm

/* -- set-up ------------------------------------------------------------------------------------------ */
_start:
        /* Section 3.1.7 "Machine Trap-Vector Base-Address Register (mtvec)": direct mode. */
        lla     t0, trap
        csrw    mtvec, t0
        /* "Machine Scratch Register (mscratch)": the state block, for the handler. */
        lla     s0, state
        csrw    mscratch, s0
        /* Section 3.1.8 "Machine Trap Delegation Registers (medeleg and mideleg)": every trap to M-mode;
         * Section 3.1.9 "Machine Interrupt Registers (mip and mie)": no interrupts. */
        csrw    medeleg, zero
        csrw    mideleg, zero
        csrw    mie, zero
        /* Section 3.7 "Physical Memory Protection": S/U accesses fail when no PMP entry matches, so entry 0
         * opens all memory (QEMU 7.2 goes further: with no PMP entry, mret to S/U is itself illegal). */
        li      t0, -1
        csrw    pmpaddr0, t0
        li      t0, PMP_NAPOT_RWX
        csrw    pmpcfg0, t0
        /* Section 4.1.11 "Supervisor Address Translation and Protection (satp) Register", 4.2.1
         * "Supervisor Memory-Management Fence Instruction".  satp is WARL: an unsupported MODE is not
         * kept, so its value is read back into the output header for the harness to check. */
        REG_L   t0, ST_SATP(s0)
        csrw    satp, t0
        sfence.vma
        csrr    t0, satp
        REG_L   t1, ST_OUT_START(s0)
        REG_S   t0, HDR_SATP(t1)
        REG_L   t0, ST_HYP(s0)
        beqz    t0, next_case
        /* Hypervisor extension, "Hypervisor Guest Address Translation and Protection Register (hgatp)" and
         * "Virtual Supervisor Address Translation and Protection Register (vsatp)"; "Hypervisor
         * Memory-Management Fence Instructions". */
        REG_L   t0, ST_HGATP(s0)
        csrw    hgatp, t0
        REG_L   t0, ST_VSATP(s0)
        csrw    vsatp, t0
        hfence.gvma
        csrr    t0, hgatp
        REG_S   t0, HDR_HGATP(t1)

/* -- per-case loop ----------------------------------------------------------------------------------- */
next_case:
        csrr    s0, mscratch
        REG_L   s1, ST_CASE(s0)
        REG_L   t0, ST_CASE_END(s0)
        bgeu    s1, t0, output
        /* Start every case from a clean state: an execute probe returns through the handler with its
         * SUM/MXR still set. */
        li      t1, MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR
        csrc    mstatus, t1
        REG_L   t0, ST_HYP(s0)
        beqz    t0, clean
        li      t1, MSTATUS_SUM | MSTATUS_MXR   /* vsstatus has sstatus's layout */
        csrc    vsstatus, t1
        li      t1, HSTATUS_SPVP
        csrc    hstatus, t1
clean:
        sfence.vma
        REG_L   a0, CASE_VA(s1)
        REG_L   a1, CASE_MSTATUS(s1)
        REG_L   t0, CASE_KIND(s1)
        clear_trap
        li      a2, 0                   /* the value if the load faults */
        REG_L   a3, CASE_VSSTATUS(s1)
        REG_L   a4, CASE_HSTATUS(s1)
        andi    t2, t0, VIRT
        beqz    t2, plain

        /* V=1 (hypervisor extension, "Hypervisor Virtual-Machine Load and Store Instructions"): HLV/HSV
         * (.D on RV64, .W on RV32) from M-mode access as VS- or VU-mode by hstatus.SPVP, through vsatp and hgatp.  vsstatus and
         * hstatus.SPVP for this case, then a flush: QEMU 7.2's TLB for HLV/HSV ignores SPVP (docs/qemu.md). */
        csrs    vsstatus, a3
        csrs    hstatus, a4
        hfence.gvma
        andi    t0, t0, VIRT - 1        /* the access kind */
        bnez    t0, virt_not_read
        guarded record, HLV_X a2, (a0)
        j       record
virt_not_read:
        li      t1, ACCESS_WRITE
        bne     t0, t1, execute
        /* A write probe: load (0 if it faults), then store the same value back. */
        guarded after_virt_load, HLV_X a2, (a0)
after_virt_load:
        csrr    s0, mscratch
        clear_trap                      /* forget the load's fault, if any */
        guarded record, HSV_X a2, (a0)
        j       record

plain:
        bnez    t0, not_read
        /* A read: one load with MPRV=1 (a1 holds MPRV|MPP|SUM|MXR). */
        guarded record, REG_L a2, 0(a0)
        j       record
not_read:
        li      t1, ACCESS_WRITE
        bne     t0, t1, execute
        /* A write probe: load (0 if it faults), then store the same value back. */
        guarded after_load, REG_L a2, 0(a0)
after_load:
        csrr    s0, mscratch
        clear_trap                      /* forget the load's fault, if any */
        guarded record, REG_S a2, 0(a0)
        j       record

        /* An execute probe, Section 3.3.2 "Trap-Return Instructions": mret to va in S/U-mode, or in VS/VU
         * with MPV (a1 holds MPP|SUM|MXR[|MPV], no MPRV). */
execute:
        lla     t1, after_execute
        REG_S   t1, ST_RESUME(s0)
        csrw    mepc, a0
        csrs    mstatus, a1
        .if XLEN == 32
        lw      t1, CASE_MSTATUS + 4(s1)  /* mstatush: MPV for VS/VU-mode */
        csrs    mstatush, t1
        .endif
        mret
after_execute:
        csrr    s0, mscratch
        REG_L   s1, ST_CASE(s0)
        REG_L   a2, ST_EPC(s0)          /* value = mepc */
        /* A fetch that succeeded hits the illegal 0x0000 parcel at va itself: that is no trap. */
        REG_L   t0, ST_CAUSE(s0)
        li      t1, CAUSE_ILLEGAL_INSTRUCTION
        bne     t0, t1, record
        REG_L   t1, CASE_VA(s1)
        bne     a2, t1, record
        li      t1, NO_TRAP
        REG_S   t1, ST_CAUSE(s0)
        REG_S   zero, ST_TVAL(s0)

        /* Copy the trap record and the value into this case's result; on to the next case. */
record:
        csrr    s0, mscratch
        REG_L   s1, ST_CASE(s0)
        REG_L   s2, ST_RESULT(s0)
        REG_L   t0, ST_CAUSE(s0)
        REG_S   t0, RES_CAUSE(s2)
        REG_S   a2, RES_VALUE(s2)
        REG_L   t0, ST_TVAL(s0)
        REG_S   t0, RES_TVAL(s2)
        REG_L   t0, ST_TVAL2(s0)
        REG_S   t0, RES_TVAL2(s2)
        REG_L   t0, ST_TINST(s0)
        REG_S   t0, RES_TINST(s2)
        addi    s1, s1, CASE_SIZE
        REG_S   s1, ST_CASE(s0)
        addi    s2, s2, RESULT_SIZE
        REG_S   s2, ST_RESULT(s0)
        j       next_case

/* -- output: header, results, trailer, byte by byte to the UART; then power off ---------------------- */
output:
        REG_L   s1, ST_OUT_START(s0)
        REG_L   s2, ST_OUT_END(s0)
        li      s3, UART
send:
        bgeu    s1, s2, finish
wait_thre:
        lbu     t0, UART_LSR(s3)
        andi    t0, t0, LSR_THRE
        beqz    t0, wait_thre
        lbu     t0, 0(s1)
        sb      t0, UART_THR(s3)
        addi    s1, s1, 1
        j       send
finish:
        fence
        li      t0, FINISHER
        li      t1, FINISHER_PASS
        sw      t1, 0(t0)
        j       finish

/* -- trap handler (mtvec direct mode needs 4-byte alignment) -----------------------------------------
 * Section 3.1.6.1 "Privilege and Global Interrupt-Enable Stack in mstatus register": entered with MPP =
 * the trapping mode (M for MPRV loads/stores, whose MPRV is still set; MPV=1 after a trap from VS/VU).
 * Clears MPRV, MPV and GVA (RV32: in mstatush) and sets MPP=M so that mret resumes the stub in M-mode, physically
 * (QEMU 7.2's mret enters V=1 from MPV even when MPP=M: docs/qemu.md).  MPV and GVA are read-only zero
 * without H, so clearing them there is harmless.  Section 3.1.15 "Machine Cause Register (mcause)", 3.1.16 "Machine
 * Trap Value Register (mtval)"; hypervisor extension, "Machine Second Trap Value Register (mtval2)": the
 * guest-physical address >> 2 of a guest-page fault, and "Machine Trap Instruction Register (mtinst)". */
        .balign 4
trap:
        csrr    t6, mscratch
        .if XLEN == 64
        li      t5, MSTATUS_MPRV | MSTATUS_MPV | MSTATUS_GVA
        .else
        li      t5, MSTATUSH_MPV | MSTATUSH_GVA
        csrc    mstatush, t5
        li      t5, MSTATUS_MPRV
        .endif
        csrc    mstatus, t5
        li      t5, MSTATUS_MPP         /* MPP = M: mret returns to the stub */
        csrs    mstatus, t5
        csrr    t5, mcause
        REG_S   t5, ST_CAUSE(t6)
        csrr    t5, mepc
        REG_S   t5, ST_EPC(t6)
        csrr    t5, mtval
        REG_S   t5, ST_TVAL(t6)
        REG_L   t5, ST_HYP(t6)
        beqz    t5, trap_return
        csrr    t5, mtval2
        REG_S   t5, ST_TVAL2(t6)
        csrr    t5, mtinst
        REG_S   t5, ST_TINST(t6)
trap_return:
        REG_L   t5, ST_RESUME(t6)
        csrw    mepc, t5
        mret

/* The data follows, 8-byte aligned; nothing may come after this label in the code. */
        .balign 8
state:
