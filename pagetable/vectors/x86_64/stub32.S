/*
 * The QEMU x86 probe stub for 32-bit paging and PAE paging: a bare-metal program that stays in 32-bit
 * protected mode and performs one real access through the MMU per case -- an 8-byte load, a store, or an
 * instruction fetch, at CPL 0 or CPL 3, with the case's CR0, CR4, IA32_EFER and EFLAGS -- and records what
 * the processor did.  pagetable/vectors/x86_64/qemu32.py assembles it with GNU binutils and appends its
 * data and its own page tables, GDT, IDT and TSS (docs/qemu.md, "x86 32-bit and PAE paging").
 *
 * Intel SDM Vol. 3A (Order No. 253668): chapter 4 "Paging", 4.1.2 (CR0.PG, CR4.PAE: 32-bit or PAE
 * paging), 4.3 (32-bit paging, CR4.PSE), 4.4.1 "PDPTE Registers" (MOV to CR3, and MOV to CR0/CR4 that
 * change paging bits, load the four PDPTEs; a reserved bit set in one is #GP(0) at that MOV), 4.10.4.1
 * (MOV to CR3 with CR4.PGE=0 invalidates every translation); chapter 6 "Interrupt and Exception
 * Handling", 6.10-6.12 (32-bit interrupt gates, Figure 6-2; the stack frame with and without a privilege
 * change, Figure 6-4); chapter 8 "Task Management", 8.2.1 (the 32-bit TSS: SS0:ESP0, the stack of traps
 * from CPL 3); 3.4.5 (segment descriptors); Vol. 2, CPUID, IRET, MOVQ (MMX).
 *
 * Build: x86_64-linux-gnu-as --32, ld -m elf_i386 -Ttext=0, objcopy -O binary.  The harness passes every
 * number it shares with the stub with --defsym, so each is declared once (in Python).
 *
 * Entry (from boot.S): 32-bit protected mode, flat segments, paging off, EBX = the stub's physical base.
 * Position independent: with paging off the stub addresses everything from EBP (its base), with paging
 * on from the state block's VA, which `state_va` computes from EIP.  The stub enables paging on boot
 * tables that map it both where it is (identity) and at its alias in the harness's slot (VA = PA +
 * ST_ALIAS), the only mapping of the stub that every case's CR3 also has, and runs at the alias.
 *
 * Data, 8-byte aligned after the code at label "state" (u64 fields, little-endian; the stub reads and
 * writes the low 32 bits of each, and all 64 of VALUE; offsets in bytes):
 *   state block  ST_*   (it holds the VAs of everything else)
 *   case records CASE_* (CASE_SIZE bytes each, from ST_CASE up to ST_CASE_END)
 *   output       header HDR_*, one result record RES_* per case, trailer; sent byte by byte to COM1 from
 *                ST_OUT_START to ST_OUT_END.
 *
 * A case: the stub goes back to its boot CR3 (a valid PDPT, for the MOV to CR0 and CR4 that may load the
 * PDPTEs again), writes IA32_EFER, CR0 and CR4 (first with PGE clear), then the case's CR3 -- a #GP there
 * (PAE: a PDPTE with a reserved bit) is the case's result -- and performs the access by IRET into a frame
 * built from the case: CPL 0 (EIP, CS, EFLAGS) or CPL 3 (and ESP, SS), EIP one of the access snippets
 * below, EAX = the VA, MM0 = the value to store.  A load or store that succeeds reaches the snippet's UD2
 * (#UD at that EIP); a fetch that succeeds executes the tag's 0xCC byte at the VA, INT3 (#BP at EIP =
 * VA + 1, a DPL-3 gate).  Every vector enters one handler, which records vector, error code, EIP, MM0 and
 * CR2 and resumes the stub at ST_RESUME on its own stack (ST_RSP) at CPL 0.
 */

        .ifndef ST_VECTOR
        .error "stub32.S needs the harness's --defsym values (pagetable/vectors/x86_64/qemu32.py builds it)"
        .end
        .endif

        .text
        .globl _start

/* \reg = the VA (or, with paging off, the PA) of the state block, from EIP (uses one stack slot). */
        .macro state_va reg
        call    .Lpc\@
.Lpc\@: pop     \reg
        add     $(state - .Lpc\@), \reg
        .endm

/* Header field \field = register \reg of CPUID leaf \leaf (subleaf 0), if CPUID leaf \top (0 or 0x80000000)
 * reports \leaf as within its range in EAX; else the field stays 0. */
        .macro cpuid_word top, leaf, reg, field
        mov     $\top, %eax
        cpuid
        cmp     $\leaf, %eax
        jb      .Lnone\@
        mov     $\leaf, %eax
        xor     %ecx, %ecx
        cpuid
        mov     \reg, \field(%edi)
.Lnone\@:
        .endm

/* A u64 field of 32-bit value \value (an immediate or a register). */
        .macro put field, value
        movl    \value, \field
        movl    $0, 4+\field
        .endm

/* -- paging off: CPUID, the boot tables, paging on (SDM 4.1.2, 10.9.1) -------------------------------- */
        .code32
_start:
        mov     %ebx, %ebp                      /* the stub's physical base */
        lea     (state - _start)(%ebp), %esi
        mov     ST_OUT_PA(%esi), %edi           /* the output header, physically */
        /* CPUID (SDM Vol. 2A): leaf 1 EDX (PSE, PAE, PGE, PSE-36), leaf 7 EBX (SMEP, SMAP), 0x80000001 EDX
         * (NX) and 0x80000008 EAX (MAXPHYADDR), each only where the highest leaf reaches it (else 0). */
        cpuid_word 0, 1, %edx, HDR_CPUID1_EDX
        cpuid_word 0, 7, %ebx, HDR_CPUID7_EBX
        cpuid_word 0x80000000, 0x80000001, %edx, HDR_EXT1_EDX
        cpuid_word 0x80000000, 0x80000008, %eax, HDR_EXT8_EAX
        /* PAE paging needs CPUID.01H:EDX.PAE: without it, report and stop. */
        mov     ST_BOOT_CR4(%esi), %eax
        test    $CR4_PAE, %eax
        jz      1f
        testl   $CPUID1_EDX_PAE, HDR_CPUID1_EDX(%edi)
        jnz     1f
        movl    $STATUS_NO_PAE, HDR_STATUS(%edi)
        lea     HDR_SIZE(%edi), %ecx
        send    %edi, %ecx
        finish
1:
        lgdt    ST_GDTR_PA(%esi)                /* the harness's GDT, by its physical address */
        mov     $(USER_DS | 3), %ecx            /* DPL-3 data: usable at CPL 0 and after IRET to CPL 3 */
        mov     %ecx, %ds
        mov     %ecx, %es
        mov     %ecx, %fs
        mov     %ecx, %gs
        mov     $KERNEL_DS, %ecx
        mov     %ecx, %ss
        mov     %eax, %cr4                      /* PAE or not, for the run (SDM 4.1.2) */
        mov     ST_BOOT_CR3(%esi), %eax         /* PAE: loads the boot PDPTEs */
        mov     %eax, %cr3
        mov     %cr0, %eax
        or      $CR0_PG, %eax
        mov     %eax, %cr0                      /* identity-mapped: the next fetch is at the same address */
        mov     ST_STACK(%esi), %esp            /* its alias */
        lea     (high - _start)(%ebp), %eax
        add     ST_ALIAS(%esi), %eax
        push    $KERNEL_CS
        push    %eax
        lret                                    /* to the alias, in the harness's 32-bit code segment */

/* -- paging on, at the alias ------------------------------------------------------------------------- */
high:
        state_va %ebx                           /* the state block's VA; EBX holds it throughout */
        lgdt    ST_GDTR(%ebx)                   /* GDT and IDT by their aliases */
        lidt    ST_IDTR(%ebx)
        mov     $TSS_SEL, %eax                  /* SS0:ESP0 for traps from CPL 3 */
        ltr     %ax

/* Forget the trap record. */
        .macro clear_trap
        put     ST_VECTOR(%ebx), $NO_TRAP
        put     ST_ERROR(%ebx), $0
        put     ST_CR2(%ebx), $0
        put     ST_RIP(%ebx), $0
        xor     %eax, %eax
        mov     %eax, %cr2
        .endm

/* One access (SDM Vol. 2, IRET): the frame from the case (ESI) -- SS and ESP only for CPL 3 --, EIP = the
 * case field \rip, MM0 = ST_VALUE; the handler comes back at \resume. */
        .macro access rip, resume
        lea     (\resume - state)(%ebx), %eax
        mov     %eax, ST_RESUME(%ebx)
        movq    ST_VALUE(%ebx), %mm0
        testl   $3, CASE_CS(%esi)
        jz      .Lcpl0\@
        pushl   CASE_SS(%esi)
        pushl   ST_RSP(%ebx)
.Lcpl0\@:
        pushl   CASE_RFLAGS(%esi)
        pushl   CASE_CS(%esi)
        pushl   \rip(%esi)
        mov     CASE_VA(%esi), %eax
        iret
        .endm

/* Skip the case (to `record`, with no trap) unless the CPUID word at header field \have has every bit of
 * the case field \need. */
        .macro need field, have
        mov     \field(%esi), %eax
        mov     %eax, %ecx
        and     \have(%edi), %ecx
        cmp     %eax, %ecx
        jne     record
        .endm

/* -- per-case loop ----------------------------------------------------------------------------------- */
next_case:
        state_va %ebx
        mov     ST_CASE(%ebx), %esi
        cmp     ST_CASE_END(%ebx), %esi
        jae     output
        mov     %esp, ST_RSP(%ebx)
        lea     (record - state)(%ebx), %eax    /* a fault while loading the registers is recorded */
        mov     %eax, ST_RESUME(%ebx)
        clear_trap
        put     ST_VALUE(%ebx), $0
        /* A case whose registers need a feature CPUID does not report is skipped (the harness refuses the
         * run): QEMU 7.2's TCG does not raise #GP for such a MOV to CR4, it hangs. */
        mov     ST_OUT_START(%ebx), %edi
        need    CASE_NEED1_EDX, HDR_CPUID1_EDX
        need    CASE_NEED7_EBX, HDR_CPUID7_EBX
        need    CASE_NEEDX1_EDX, HDR_EXT1_EDX
        /* The boot tables first: in PAE the MOV to CR0 and CR4 below may load the PDPTEs from CR3 (4.4.1).
         * Then IA32_EFER (NXE; not on a CPU without it, where the case's EFER is 0), CR0 (WP), CR4 (PSE,
         * SMEP, SMAP, PGE) -- first with PGE clear, which invalidates global translations too --, then
         * the case's CR3, which flushes the rest (4.10.4.1). */
        mov     ST_BOOT_CR3(%ebx), %eax
        mov     %eax, %cr3
        testl   $EXT1_EDX_EFER, HDR_EXT1_EDX(%edi)
        jz      1f
        mov     CASE_EFER(%esi), %eax
        xor     %edx, %edx
        mov     $MSR_EFER, %ecx
        wrmsr
1:      mov     CASE_CR0(%esi), %eax
        mov     %eax, %cr0
        mov     CASE_CR4(%esi), %eax
        and     $~CR4_PGE, %eax
        mov     %eax, %cr4
        mov     CASE_CR4(%esi), %eax
        mov     %eax, %cr4
        mov     ST_CR3(%ebx), %eax
load_cr3:
        mov     %eax, %cr3                      /* PAE: #GP(0) for a PDPTE with a reserved bit (4.4.1) */
        mov     %cr3, %eax                      /* read back for the harness */
        mov     %eax, HDR_CR3(%edi)
        access  CASE_RIP1, after_first
after_first:
        state_va %ebx                           /* everything reloaded: a fetch may run anything */
        mov     ST_CASE(%ebx), %esi
        cmpl    $0, CASE_RIP2(%esi)
        je      record
        /* A write probe: the load came first; store what it read (MM0, still 0 if the load faulted). */
        clear_trap
        access  CASE_RIP2, record

        /* Copy the trap record into this case's result; on to the next case. */
record:
        state_va %ebx
        mov     ST_CASE(%ebx), %esi
        mov     ST_RESULT(%ebx), %edi
        mov     $(RES_SIZE / 4), %ecx
        .if (RES_SIZE - 8 * 5) | RES_VECTOR | (RES_ERROR - 8) | (RES_CR2 - 16) | (RES_RIP - 24) | (RES_VALUE - 32)
        .error "stub32.S copies the trap record as ST_VECTOR .. ST_VALUE, which RES_* must mirror"
        .endif
        .if ST_VECTOR | (ST_ERROR - 8) | (ST_CR2 - 16) | (ST_RIP - 24) | (ST_VALUE - 32)
        .error "stub32.S copies the trap record as the first five fields of the state block"
        .endif
        push    %esi
        mov     %ebx, %esi
        cld
        rep movsl
        pop     %esi
        addl    $CASE_SIZE, ST_CASE(%ebx)
        addl    $RES_SIZE, ST_RESULT(%ebx)
        jmp     next_case

/* -- output: header, results, trailer, byte by byte to COM1; then exit ----------------------------- */
output:
        mov     ST_OUT_START(%ebx), %esi
        mov     ST_OUT_END(%ebx), %ecx
        send    %esi, %ecx
        finish

/* -- the exception handler (SDM 6.12: 8-byte gates; the frame EIP, CS, EFLAGS -- and ESP, SS after a
 * privilege change -- and for some vectors an error code) ------------------------------------------------
 * The entries per vector 0-31: macros.S's `isr_table`. */
        isr_table pushl

/* Record vector, error code, EIP, MM0 (the value a load read) and CR2; back to the stub at CPL 0 on its own
 * stack (after a trap from CPL 3 the handler runs on the TSS's SS0:ESP0). */
isr_common:
        state_va %ebx
        popl    ST_VECTOR(%ebx)
        popl    ST_ERROR(%ebx)
        popl    ST_RIP(%ebx)
        movq    %mm0, ST_VALUE(%ebx)
        mov     %cr2, %eax
        mov     %eax, ST_CR2(%ebx)
        mov     ST_RSP(%ebx), %esp
        pushl   $RFLAGS_CLEAN
        popfl
        jmp     *ST_RESUME(%ebx)

/* -- the user page: the access snippets, mapped a second time U/S=1 and read-only for CPL-3 accesses -- */
        .balign 4096
user_page:
snip_read:
        movq    (%eax), %mm0
read_done:
        ud2
snip_write:
        movq    %mm0, (%eax)
write_done:
        ud2
snip_fetch:
        jmp     *%eax
        .balign 4096
user_page_end:

/* The data follows, 8-byte aligned; nothing may come after this label in the code. */
        .balign 8
state:
