/*
 * The QEMU AArch64 probe stub: a bare-metal program that qemu-system-aarch64 -M virt,virtualization=on
 * starts at EL2 (no EL3: the generic loader sets the PC, CurrentEL reads 0b10) and that, for each case,
 * either executes one AT instruction with the case's translation registers and records PAR_EL1, or performs
 * one real access (an 8-byte LDR, an STR, or a branch to the VA) at the case's EL with the MMU on and
 * records what the PE did.  pagetable/vectors/aarch64/qemu.py assembles it with GNU binutils, appends its
 * data (state block, stack, the harness's own translation tables, cases, output area) and documents the
 * whole harness.
 *
 * Arm Architecture Reference Manual for A-profile architecture (DDI 0487 M.a.a):
 *   C5.5 / C6.2.26 "AT" and the AT <operation> pages of C5.5.x (S1E1R, S1E1W, S1E1RP, S1E1WP (FEAT_PAN2),
 *        S1E0R, S1E0W, S12E1R, S12E1W, S12E0R, S12E0W, S1E2R, S1E2W); D8.14 (address translation
 *        instructions); D24.2.118 PAR_EL1 (F, FST, PTW, S; PA and ATTR);
 *   D1.3 / D1.10 "Exception entry", D1.10.2 "Exception vectors" (VBAR_ELx + 0x000/0x200/0x400/0x600 by
 *        where the exception comes from, +0x00/0x80/0x100/0x180 synchronous/IRQ/FIQ/SError), ERET (C6.2.91);
 *   D24.2.47 ESR_EL1 / D24.2.48 ESR_EL2 (EC in bits 31:26; D24.2.47.x ISS encodings: 0x24/0x25 Data Abort
 *        from a lower / the same EL, 0x20/0x21 Instruction Abort, 0x3C BRK, 0x16 HVC), FAR_ELx, HPFAR_EL2
 *        (D24.2.64: FIPA, IPA[51:12] >> 8 of a stage 2 fault);
 *   D8.16 TLB maintenance: TLBI ALLE1, TLBI ALLE2, then DSB and ISB before the new context is used.
 *
 * Build: aarch64-linux-gnu-as, ld -Ttext=0, objcopy -O binary.  Position independent (ADR, no literal
 * pools holding addresses): the code runs at its physical address with the EL2 MMU off and, for EL2
 * regime cases with SCTLR_EL2.M=1, at its alias in the harness's TTBR0_EL2 slot (VA = PA + CASE_DELTA).
 * Every number shared with the harness comes as --defsym (record offsets, register bits).
 *
 * How a case runs (x22 = case record, x23 = result record, x20 = the state block's PA throughout):
 *   1. the case's EL1 and stage 2 registers, TCR_EL2, TTBR0/1_EL2, MAIR_EL2, VBAR_EL1 and last HCR_EL2
 *      (RW set; E2H as the case says) are written with the EL2 MMU off; ISB; TLBI ALLE1 and ALLE2, DSB ISH, ISB: no translation
 *      of an earlier case survives.
 *   2. AT: one of the AT instructions (CASE_AT indexes at_table), ISB, PAR_EL1 read.  AT S1E2R/W with
 *      SCTLR_EL2.M=1 (and S1E0R/W with HCR_EL2.{E2H,TGE} = {1,1}: the EL2&0 regime) instead runs as an
 *      access (mode 2 below) of the snippet snip_at_<op>.
 *   3. An access: x0 = the VA, x1 = the value to store, then by CASE_MODE
 *        0 (lower): ERET to EL1h or EL0t (CASE_SPSR, DAIF masked, PAN as the case says) at the snippet's VA
 *           in the probe page, which the harness maps in the case's EL1&0 regime (one root-table slot);
 *           the EL1 vectors there (VBAR_EL1) just execute HVC #(0x100 + vector index), so every exception
 *           taken to EL1 comes on to EL2, which reads ESR_EL1, FAR_EL1 and ELR_EL1; stage 2 faults come
 *           to EL2 directly (ESR_EL2, FAR_EL2, HPFAR_EL2);
 *        1 (flat): at EL2 with its MMU off, a branch to the snippet's PA;
 *        2 (mmu): at EL2 with the case's SCTLR_EL2 (M=1): VBAR_EL2 and TPIDR_EL2 move to their aliases,
 *           SCTLR_EL2 is written, ISB, HVC: whatever the next fetch does (HVC, a fault of the unmapped PA,
 *           a tag's BRK) lands at the alias vectors, which branch to the snippet's alias (or, for EL0 with
 *           HCR_EL2.{E2H,TGE} = {1,1}, ERET to it: EL0 in the EL2&0 regime); the outcome of
 *           the access comes back there, and the way out is the mirror image (VBAR_EL2 and TPIDR_EL2 back
 *           to their PAs, SCTLR_EL2.M=0, ISB, HVC).
 *      A snippet that completes ends in BRK #DONE_IMM; a fetch that reaches tagged RAM executes the tag's
 *      BRK #TAG_IMM at the VA.  Either way an exception: the harness tells success from a fault by the
 *      syndrome and the return address.  A write probe is two accesses: the load first, then the store of
 *      what it loaded (0 when it faulted); the store's outcome is the result.
 *   4. The EL2 vector records ESR_EL2, FAR_EL2, HPFAR_EL2, ELR_EL2, ESR_EL1, FAR_EL1, ELR_EL1 and x1 in the
 *      state block and returns to the stub's loop on its own stack (restored from ST_SP), at EL2.
 * At the end: the output area (header, results, trailer) byte by byte to the PL011 UART, then PSCI
 * SYSTEM_OFF by SMC (the virt machine's PSCI conduit with virtualization=on and no EL3).
 */

        .ifndef ST_PHASE
        .error "stub.S needs the harness's --defsym values (pagetable/vectors/aarch64/qemu.py builds it)"
        .end
        .endif

        .arch   armv8.2-a               /* AT S1E1RP/WP (FEAT_PAN2), ID_AA64MMFR2_EL1, MSR PAN */

/* QEMU virt machine: PL011 UART (data register, flag register bit 5 TXFF) and PSCI (SMC conduit). */
        .equ    UART_BASE, 0x09000000
        .equ    UART_FR, 0x18
        .equ    UART_TXFF, 0x20
        .equ    PSCI_SYSTEM_OFF, 0x84000008

        .text
        .globl  _start

/* -- entry: EL2, MMU off, PC = the stub's physical base -------------------------------------------------- */
_start:
        adr     x20, state
        msr     tpidr_el2, x20                  /* the EL2 vector's way to the state block */
        ldr     x0, [x20, #ST_STACK]
        mov     sp, x0
        adr     x0, vectors_el2
        msr     vbar_el2, x0
        ldr     x0, =SCTLR_EL2_OFF
        msr     sctlr_el2, x0
        ldr     x0, =HCR_EL2_BASE
        msr     hcr_el2, x0
        ldr     x0, =CPTR_EL2_BASE              /* no traps of FP/SIMD (none used) */
        msr     cptr_el2, x0
        msr     mdcr_el2, xzr
        isb
        ldr     x21, [x20, #ST_OUT_START]
        mrs     x0, CurrentEL                   /* D24.2.31: bits 3:2, 0b10 = EL2 */
        str     x0, [x21, #HDR_CURRENTEL]
        mrs     x0, id_aa64mmfr0_el1
        str     x0, [x21, #HDR_MMFR0]
        mrs     x0, id_aa64mmfr1_el1
        str     x0, [x21, #HDR_MMFR1]
        mrs     x0, id_aa64mmfr2_el1
        str     x0, [x21, #HDR_MMFR2]
        mrs     x0, id_aa64pfr0_el1
        str     x0, [x21, #HDR_PFR0]
        mrs     x0, midr_el1
        str     x0, [x21, #HDR_MIDR]

/* -- per-case loop -------------------------------------------------------------------------------------- */
next_case:
        ldr     x22, [x20, #ST_CASE]
        ldr     x0, [x20, #ST_CASE_END]
        cmp     x22, x0
        b.hs    output
        ldr     x23, [x20, #ST_RESULT]
        bl      clear_trap
        /* 1. The case's registers, EL2 MMU off (SCTLR_EL2 stays SCTLR_EL2_OFF until a mode-2 access).
         * HCR_EL2 with E2H=0 while the EL1 registers are written (with E2H=1, D24.1.x, MSR TCR_EL1 at EL2
         * would write TCR_EL2), the case's HCR_EL2 last. */
        ldr     x0, =HCR_EL2_BASE
        msr     hcr_el2, x0
        isb
        ldr     x0, [x22, #CASE_SCTLR_EL1]
        msr     sctlr_el1, x0
        ldr     x0, [x22, #CASE_TCR_EL1]
        msr     tcr_el1, x0
        ldr     x0, [x22, #CASE_TTBR0_EL1]
        msr     ttbr0_el1, x0
        ldr     x0, [x22, #CASE_TTBR1_EL1]
        msr     ttbr1_el1, x0
        ldr     x0, [x22, #CASE_MAIR_EL1]
        msr     mair_el1, x0
        ldr     x0, [x22, #CASE_VBAR_EL1]
        msr     vbar_el1, x0
        ldr     x0, [x22, #CASE_VTCR_EL2]
        msr     vtcr_el2, x0
        ldr     x0, [x22, #CASE_VTTBR_EL2]
        msr     vttbr_el2, x0
        ldr     x0, [x22, #CASE_TCR_EL2]
        msr     tcr_el2, x0
        ldr     x0, [x22, #CASE_TTBR0_EL2]
        msr     ttbr0_el2, x0
        ldr     x0, [x22, #CASE_TTBR1_EL2]
        msr     ttbr1_el2, x0
        ldr     x0, [x22, #CASE_MAIR_EL2]
        msr     mair_el2, x0
        isb
        ldr     x0, [x22, #CASE_HCR_EL2]
        msr     hcr_el2, x0
        isb
        tlbi    alle1                           /* D8.16: every EL1&0 translation, every VMID */
        tlbi    alle2
        dsb     ish
        isb
        ldr     x0, [x22, #CASE_OP]
        cbnz    x0, access_case

        /* 2. AT from EL2 (C5.5): x0 = the VA; PAR_EL1 after ISB (D8.14). */
        ldr     x1, [x22, #CASE_AT]
        adr     x2, at_table
        add     x2, x2, x1, lsl #4
        ldr     x0, [x22, #CASE_VA]
        blr     x2
        isb
        mrs     x0, par_el1
        str     x0, [x20, #ST_PAR]
        b       record

        /* 3. An access (a write: the load first, then the store of what it loaded). */
access_case:
        ldr     x0, [x22, #CASE_VA]
        mov     x1, #0
        ldr     x2, [x22, #CASE_TARGET]
        bl      run_guest
        ldr     x2, [x22, #CASE_TARGET2]
        cbz     x2, record
        ldr     x1, [x20, #ST_VALUE]            /* what the load read, 0 if it faulted */
        bl      clear_trap
        str     x1, [x20, #ST_VALUE]
        ldr     x0, [x22, #CASE_VA]
        bl      run_guest

        /* Copy the trap record into the case's result; on to the next case. */
record:
        ldr     x0, [x20, #ST_PAR]
        str     x0, [x23, #RES_PAR]
        ldr     x0, [x20, #ST_VECTOR]
        str     x0, [x23, #RES_VECTOR]
        ldr     x0, [x20, #ST_ESR2]
        str     x0, [x23, #RES_ESR2]
        ldr     x0, [x20, #ST_FAR2]
        str     x0, [x23, #RES_FAR2]
        ldr     x0, [x20, #ST_HPFAR]
        str     x0, [x23, #RES_HPFAR]
        ldr     x0, [x20, #ST_ELR2]
        str     x0, [x23, #RES_ELR2]
        ldr     x0, [x20, #ST_ESR1]
        str     x0, [x23, #RES_ESR1]
        ldr     x0, [x20, #ST_FAR1]
        str     x0, [x23, #RES_FAR1]
        ldr     x0, [x20, #ST_ELR1]
        str     x0, [x23, #RES_ELR1]
        ldr     x0, [x20, #ST_VALUE]
        str     x0, [x23, #RES_VALUE]
        add     x22, x22, #CASE_SIZE
        str     x22, [x20, #ST_CASE]
        add     x23, x23, #RES_SIZE
        str     x23, [x20, #ST_RESULT]
        b       next_case

/* Forget the trap record (x0 clobbered). */
clear_trap:
        mov     x0, #NO_TRAP
        str     x0, [x20, #ST_VECTOR]
        str     xzr, [x20, #ST_PAR]
        str     xzr, [x20, #ST_ESR2]
        str     xzr, [x20, #ST_FAR2]
        str     xzr, [x20, #ST_HPFAR]
        str     xzr, [x20, #ST_ELR2]
        str     xzr, [x20, #ST_ESR1]
        str     xzr, [x20, #ST_FAR1]
        str     xzr, [x20, #ST_ELR1]
        str     xzr, [x20, #ST_VALUE]
        ret

/* -- the output: header, results, trailer to the PL011 UART; then PSCI SYSTEM_OFF ----------------------- */
output:
        ldr     x1, [x20, #ST_OUT_START]
        ldr     x2, [x20, #ST_OUT_END]
        ldr     x3, =UART_BASE
1:      cmp     x1, x2
        b.hs    3f
2:      ldr     w4, [x3, #UART_FR]
        tst     w4, #UART_TXFF
        b.ne    2b
        ldrb    w4, [x1], #1
        strb    w4, [x3]
        b       1b
3:      ldr     x0, =PSCI_SYSTEM_OFF
        smc     #0
4:      wfi
        b       4b

/* -- run_guest: one access, x0 = VA, x1 = value, x2 = the snippet's address (mode-specific), x22 = case;
 * returns (to the caller of run_guest) when the EL2 vector has recorded an exception. ------------------- */
run_guest:
        stp     x29, x30, [sp, #-96]!
        stp     x19, x20, [sp, #16]
        stp     x21, x22, [sp, #32]
        stp     x23, x24, [sp, #48]
        stp     x25, x26, [sp, #64]
        stp     x27, x28, [sp, #80]
        mov     x9, sp
        str     x9, [x20, #ST_SP]
        ldr     x9, [x22, #CASE_MODE]
        str     x9, [x20, #ST_MODE]
        cmp     x9, #MODE_FLAT
        b.eq    1f
        cmp     x9, #MODE_MMU
        b.eq    2f
        /* mode 0: ERET to EL1/EL0 (D1.10, C6.2.91) */
        mov     x9, #PHASE_ACCESS
        str     x9, [x20, #ST_PHASE]
        msr     elr_el2, x2
        ldr     x9, [x22, #CASE_SPSR]
        msr     spsr_el2, x9
        eret
1:      /* mode 1: EL2, MMU off */
        mov     x9, #PHASE_ACCESS
        str     x9, [x20, #ST_PHASE]
        br      x2
2:      /* mode 2: EL2 with the case's SCTLR_EL2; into the alias through an exception */
        mov     x9, #PHASE_ENTER
        str     x9, [x20, #ST_PHASE]
        str     x2, [x20, #ST_TARGET]
        ldr     x9, [x22, #CASE_SPSR]
        str     x9, [x20, #ST_SPSR]
        ldr     x10, [x22, #CASE_DELTA]
        adr     x9, vectors_el2
        add     x9, x9, x10
        msr     vbar_el2, x9
        add     x9, x20, x10
        msr     tpidr_el2, x9
        ldr     x9, [x22, #CASE_SCTLR_EL2]
        isb
        msr     sctlr_el2, x9
        isb
        hvc     #HVC_TRANSITION
        b       .

/* -- the EL2 vectors (D1.10.2): 16 entries of 0x80 bytes; x10 = the entry's index ------------------------ */
        .macro  vector index
        .balign 0x80
        mov     x10, #\index
        b       el2_common
        .endm

        .balign 0x800
vectors_el2:
        .irp    n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vector  \n
        .endr
        .balign 0x80

el2_common:
        mrs     x9, tpidr_el2                   /* the state block, at an address valid in this mode */
        ldr     x11, [x9, #ST_PHASE]
        cmp     x11, #PHASE_ENTER
        b.eq    el2_enter
        cmp     x11, #PHASE_EXIT
        b.eq    el2_back
        str     x10, [x9, #ST_VECTOR]
        mrs     x11, esr_el2
        str     x11, [x9, #ST_ESR2]
        mrs     x11, far_el2
        str     x11, [x9, #ST_FAR2]
        mrs     x11, hpfar_el2
        str     x11, [x9, #ST_HPFAR]
        mrs     x11, elr_el2
        str     x11, [x9, #ST_ELR2]
        mrs     x11, hcr_el2                    /* with E2H=1 the EL1 registers are the _EL12 names */
        tbnz    x11, #HCR_E2H_BIT, 1f
        mrs     x11, esr_el1
        str     x11, [x9, #ST_ESR1]
        mrs     x11, far_el1
        str     x11, [x9, #ST_FAR1]
        mrs     x11, elr_el1
        str     x11, [x9, #ST_ELR1]
        b       2f
1:      mrs     x11, esr_el12
        str     x11, [x9, #ST_ESR1]
        mrs     x11, far_el12
        str     x11, [x9, #ST_FAR1]
        mrs     x11, elr_el12
        str     x11, [x9, #ST_ELR1]
2:
        str     x1, [x9, #ST_VALUE]
        mrs     x11, par_el1                    /* the AT snippets' result (mode 2) */
        str     x11, [x9, #ST_PAR]
        ldr     x11, [x9, #ST_MODE]
        cmp     x11, #MODE_MMU
        b.ne    el2_back
        /* Out of the alias: vectors and state block by their PAs, EL2 MMU off, then an exception. */
        mov     x11, #PHASE_EXIT
        str     x11, [x9, #ST_PHASE]
        ldr     x11, [x9, #ST_STATE_PA]
        msr     tpidr_el2, x11
        ldr     x11, [x9, #ST_VBAR_PA]
        msr     vbar_el2, x11
        ldr     x11, =SCTLR_EL2_OFF
        isb
        msr     sctlr_el2, x11
        isb
        hvc     #HVC_TRANSITION
        b       .

el2_enter:                                      /* at the alias, EL2 MMU on: on to the snippet */
        mov     x11, #PHASE_ACCESS
        str     x11, [x9, #ST_PHASE]
        ldr     x2, [x9, #ST_TARGET]
        ldr     x11, [x9, #ST_SPSR]
        tst     x11, #0xf                       /* SPSR.M[3:0] = 0b0000: EL0t, HCR_EL2.{E2H,TGE} = {1,1} */
        b.ne    1f
        msr     spsr_el2, x11                   /* EL0 in the EL2&0 regime: ERET from the alias */
        msr     elr_el2, x2
        eret
1:      br      x2

el2_back:                                       /* at the PA, EL2 MMU off: back to run_guest's caller */
        mrs     x20, tpidr_el2
        ldr     x9, [x20, #ST_SP]
        mov     sp, x9
        ldp     x19, x20, [sp, #16]
        ldp     x21, x22, [sp, #32]
        ldp     x23, x24, [sp, #48]
        ldp     x25, x26, [sp, #64]
        ldp     x27, x28, [sp, #80]
        ldp     x29, x30, [sp], #96
        ret

/* -- AT from EL2 (C5.5), one 16-byte entry per operation, in the order of qemu.py's AT_OPS --------------- */
        .balign 16
at_table:
        at      s1e1r, x0
        ret
        .balign 16
        at      s1e1w, x0
        ret
        .balign 16
        msr     pan, #1                         /* S1E1RP/WP check PSTATE.PAN (C5.5.x): set it for them */
        at      s1e1rp, x0
        msr     pan, #0
        ret
        msr     pan, #1
        at      s1e1wp, x0
        msr     pan, #0
        ret
        .irp    op, s1e0r, s1e0w, s12e1r, s12e1w, s12e0r, s12e0w, s1e2r, s1e2w
        .balign 16
        at      \op, x0
        ret
        .endr
        .balign 16
at_table_end:

        .ltorg

/* -- the probe page: what the harness maps in a case's regime (read-only, executable at EL1 and EL0).
 * 64 KiB aligned, so that it is one page of any granule; everything in it within its first 4 KiB. ------ */
        .balign 0x10000
probe_page:
el1_vectors:                                    /* VBAR_EL1: every exception taken to EL1 goes on to EL2 */
        .irp    n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        .balign 0x80
        hvc     #(HVC_EL1_VECTOR + \n)
        .endr
        .balign 0x80
snip_read:
        ldr     x1, [x0]
read_done:
        brk     #DONE_IMM
snip_write:
        str     x1, [x0]
write_done:
        brk     #DONE_IMM
snip_fetch:
        br      x0
        .irp    op, s1e2r, s1e2w, s1e0r, s1e0w  /* AT from the alias: EL2 (and EL2&0) regime with M=1 */
snip_at_\op:
        at      \op, x0
        isb
at_done_\op:
        brk     #DONE_IMM
        .endr
probe_page_end:

/* The data follows, 64 KiB aligned (qemu.py places it); nothing may come after this label in the code. */
        .balign 0x10000
state:
