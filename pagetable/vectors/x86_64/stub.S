/*
 * The QEMU x86 probe stub: a bare-metal x86-64 program that performs one real access through the MMU per
 * case -- an 8-byte load, a store, or an instruction fetch, at CPL 0 or CPL 3, with the case's CR0, CR4,
 * IA32_EFER, RFLAGS and PKRU -- and records what the processor did.  pagetable/vectors/x86_64/qemu.py
 * assembles it with GNU binutils, appends its data and its own page tables, GDT, IDT and TSS (docs/qemu.md
 * describes the whole harness).
 *
 * Intel SDM Vol. 3A (Order No. 253668): chapter 10 (9 before 2023) "Processor Management and
 * Initialization", 10.8.5 "Initializing IA-32e Mode"; chapter 4 "Paging", 4.5 (CR3, CR4.LA57), 4.10.4.1
 * "Operations that Invalidate TLBs and Paging-Structure Caches" (MOV to CR3 with CR4.PGE=0 invalidates every
 * translation); chapter 6 "Interrupt and Exception Handling", 6.14 "Exception and Interrupt Handling in
 * 64-bit Mode" (the IDT gates, the stack frame and IRETQ); 8.7 "Task Management in 64-bit Mode" (RSP0 of
 * the TSS: the stack a CPL-3 access traps onto; 7.7 before 2023); Vol. 2, CPUID and WRPKRU.
 *
 * Build: x86_64-linux-gnu-as, ld -Ttext=0, objcopy -O binary.  The harness passes with --defsym every
 * number it shares with the stub (the data layout below, the register bits of
 * pagetable/arch/x86_64/regs.py, the selectors of the GDT it builds), so each is declared once.
 *
 * Entry (from boot.S): 32-bit protected mode, flat segments, paging off, EBX = the stub's physical base.
 * Position independent: the 32-bit part addresses everything from EBX, the 64-bit part RIP-relative.  The
 * 64-bit part first runs identity-mapped and then at its alias in the harness's root-table slot (VA = PA +
 * ST_ALIAS), the only mapping of the stub that every case's CR3 also has.
 *
 * Data, 8-byte aligned after the code at label "state" (all u64, little-endian, offsets in bytes):
 *   state block  ST_*   (addressed RIP-relative; it holds the addresses of everything else)
 *   case records CASE_* (CASE_SIZE bytes each, from ST_CASE up to ST_CASE_END)
 *   output       header HDR_*, one result record RES_* per case, trailer; sent byte by byte to COM1 from
 *                ST_OUT_START to ST_OUT_END.
 *
 * An access: the stub builds an IRETQ frame (SS, RSP, RFLAGS, CS, RIP) from the case -- CPL 0 or CPL 3 by
 * its CS/SS, RIP one of the access snippets below (at its supervisor alias, or at its user alias on the
 * user page), RFLAGS with or without AC -- and returns into it with RAX = the VA and RDX = the value to
 * store.  A load or store that succeeds reaches the snippet's UD2: #UD at that RIP (an exception, not
 * INT n: a KVM without hardware virtualization, such as PVM, emulates INT n and INT3, and KVM's
 * instruction emulator cannot deliver them in protected mode).  A fetch that succeeds executes the tag's
 * 0xCC byte at the VA: INT3, #BP at RIP = VA + 1 (a DPL-3 gate, as CPL-3 code may raise it; under PVM it
 * never comes back, docs/qemu.md).  Every vector enters
 * one handler, which records vector, error code, RIP, RDX and CR2 in the state block and resumes the stub
 * at ST_RESUME on its own stack (ST_RSP) at CPL 0, without IRETQ.  The harness tells success from a fault
 * by the vector and RIP.
 */

        .ifndef ST_VECTOR
        .error "stub.S needs the harness's --defsym values (pagetable/vectors/x86_64/qemu.py builds it)"
        .end
        .endif

        .text
        .globl _start

/* -- 32-bit protected mode: CPUID, then IA-32e mode (SDM 10.8.5) -------------------------------------- */
        .code32
_start:
        mov     %ebx, %ebp                      /* the stub's physical base */
        lea     (state - _start)(%ebp), %esi    /* offsets from the base: position independent */
        mov     ST_OUT_PA(%esi), %edi           /* the output header, physically */
        /* CPUID (SDM Vol. 2A): leaf 7 subleaf 0 (SMEP, SMAP, PKU, LA57), 0x80000001 (1-GByte pages) and
         * 0x80000008 (MAXPHYADDR), for the harness to check the cases against and the walker to follow. */
        mov     $7, %eax
        xor     %ecx, %ecx
        cpuid
        mov     %ebx, HDR_CPUID7_EBX(%edi)
        mov     %ecx, HDR_CPUID7_ECX(%edi)
        mov     $0x80000001, %eax
        cpuid
        mov     %edx, HDR_EXT1_EDX(%edi)
        mov     $0x80000008, %eax
        cpuid
        mov     %eax, HDR_EXT8_EAX(%edi)
        /* 5-level paging needs CPUID.(EAX=07H,ECX=0):ECX.LA57: without it, report and stop. */
        mov     ST_BOOT_CR4(%esi), %eax
        test    $CR4_LA57, %eax
        jz      1f
        testl   $CPUID7_ECX_LA57, HDR_CPUID7_ECX(%edi)
        jnz     1f
        movl    $STATUS_NO_LA57, HDR_STATUS(%edi)
        lea     HDR_SIZE(%edi), %ecx
        send    %edi, %ecx
        finish
1:
        /* IA-32e mode (macros.S): the boot tables identity-map the stub, as the code that enables
         * paging must be; the harness's GDT by its physical address. */
        enter_long_mode %eax, ST_BOOT_CR3, ST_BOOT_EFER, ST_GDTR_PA, ST_STACK_PA, $CR0_PG

/* -- 64-bit mode ------------------------------------------------------------------------------------- */
        .code64
long64:
        /* Identity-mapped so far; go on at the alias, which every case's CR3 maps too. */
        lea     state(%rip), %rsi
        lea     high(%rip), %rcx
        add     ST_ALIAS(%rsi), %rcx
        jmp     *%rcx
high:
        lea     state(%rip), %rbx               /* the state block's VA; RBX holds it throughout */
        lgdt    ST_GDTR(%rbx)                   /* GDT and IDT by their aliases */
        lidt    ST_IDTR(%rbx)
        xor     %eax, %eax                      /* null data segments: IRETQ to CPL 3 would null them */
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %fs
        mov     %eax, %gs
        mov     $KERNEL_DS, %eax
        mov     %eax, %ss
        mov     $TSS_SEL, %eax                  /* RSP0 for traps from CPL 3 */
        ltr     %ax
        mov     ST_STACK(%rbx), %rsp
        mov     ST_CR3(%rbx), %rax              /* the case's CR3, read back for the harness */
        mov     %rax, %cr3
        mov     %cr3, %rax
        mov     ST_OUT_START(%rbx), %rdi
        mov     %rax, HDR_CR3(%rdi)

/* Forget the trap record. */
        .macro clear_trap
        movq    $NO_TRAP, ST_VECTOR(%rbx)
        movq    $0, ST_ERROR(%rbx)
        movq    $0, ST_CR2(%rbx)
        movq    $0, ST_RIP(%rbx)
        xor     %eax, %eax
        mov     %rax, %cr2
        .endm

/* One access (SDM 6.14.3, IRETQ): the frame from the case (r12), RIP = the case field \rip; the handler
 * comes back at \resume. */
        .macro access rip, resume
        lea     \resume(%rip), %rax
        mov     %rax, ST_RESUME(%rbx)
        pushq   CASE_SS(%r12)
        pushq   ST_RSP(%rbx)
        pushq   CASE_RFLAGS(%r12)
        pushq   CASE_CS(%r12)
        pushq   \rip(%r12)
        mov     CASE_VA(%r12), %rax
        mov     ST_VALUE(%rbx), %rdx
        iretq
        .endm

/* -- per-case loop ----------------------------------------------------------------------------------- */
next_case:
        lea     state(%rip), %rbx
        mov     ST_CASE(%rbx), %r12
        cmp     ST_CASE_END(%rbx), %r12
        jae     output
        mov     %rsp, ST_RSP(%rbx)
        lea     record(%rip), %rax              /* a fault while loading the registers is recorded */
        mov     %rax, ST_RESUME(%rbx)
        clear_trap
        movq    $0, ST_VALUE(%rbx)
        /* A case whose CR4 needs a feature CPUID leaf 7 does not report is skipped (the harness refuses the
         * run): QEMU 7.2's TCG does not raise #GP for such a MOV to CR4, it hangs. */
        mov     ST_OUT_START(%rbx), %rdi
        mov     CASE_NEED7_EBX(%r12), %rax
        mov     %rax, %rcx
        and     HDR_CPUID7_EBX(%rdi), %rcx
        cmp     %rax, %rcx
        jne     record
        mov     CASE_NEED7_ECX(%r12), %rax
        mov     %rax, %rcx
        and     HDR_CPUID7_ECX(%rdi), %rcx
        cmp     %rax, %rcx
        jne     record
        /* The case's registers: IA32_EFER (NXE), CR0 (WP), CR4 (SMEP, SMAP, PKE, PGE) -- written first with
         * PGE clear, which invalidates every translation, global ones too -- PKRU (with CR4.PKE: WRPKRU is
         * #UD without it), then CR3, which flushes the rest (SDM 4.10.4.1): nothing a previous case cached
         * survives. */
        mov     CASE_EFER(%r12), %rax
        mov     %rax, %rdx
        shr     $32, %rdx
        mov     $MSR_EFER, %ecx
        wrmsr
        mov     CASE_CR0(%r12), %rax
        mov     %rax, %cr0
        mov     CASE_CR4(%r12), %rax
        and     $~CR4_PGE, %rax
        mov     %rax, %cr4
        mov     CASE_CR4(%r12), %rax
        mov     %rax, %cr4
        test    $CR4_PKE, %eax
        jz      1f
        mov     CASE_PKRU(%r12), %eax
        xor     %ecx, %ecx
        xor     %edx, %edx
        wrpkru
1:      mov     ST_CR3(%rbx), %rax
        mov     %rax, %cr3
        access  CASE_RIP1, after_first
after_first:
        lea     state(%rip), %rbx               /* everything reloaded: a fetch may run anything */
        mov     ST_CASE(%rbx), %r12
        cmpq    $0, CASE_RIP2(%r12)
        je      record
        /* A write probe: the load came first; store what it read (RDX, still 0 if the load faulted). */
        clear_trap
        access  CASE_RIP2, record

        /* Copy the trap record into this case's result; on to the next case. */
record:
        lea     state(%rip), %rbx
        mov     ST_CASE(%rbx), %r12
        mov     ST_RESULT(%rbx), %r13
        mov     ST_VECTOR(%rbx), %rax
        mov     %rax, RES_VECTOR(%r13)
        mov     ST_ERROR(%rbx), %rax
        mov     %rax, RES_ERROR(%r13)
        mov     ST_CR2(%rbx), %rax
        mov     %rax, RES_CR2(%r13)
        mov     ST_RIP(%rbx), %rax
        mov     %rax, RES_RIP(%r13)
        mov     ST_VALUE(%rbx), %rax
        mov     %rax, RES_VALUE(%r13)
        addq    $CASE_SIZE, ST_CASE(%rbx)
        addq    $RES_SIZE, ST_RESULT(%rbx)
        jmp     next_case

/* -- output: header, results, trailer, byte by byte to COM1; then exit ----------------------------- */
output:
        mov     ST_OUT_START(%rbx), %rsi
        mov     ST_OUT_END(%rbx), %rcx
        send    %rsi, %rcx
        finish

/* -- the exception handler (SDM 6.14: 16-byte gates, the frame SS, RSP, RFLAGS, CS, RIP and for some
 * vectors an error code) --------------------------------------------------------------------------------
 * The entries per vector 0-31: macros.S's `isr_table`. */
        isr_table pushq

/* Record vector, error code, RIP, RDX (the value a load read) and CR2; back to the stub at CPL 0 on its own
 * stack (after a trap from CPL 3 the handler runs on the TSS's RSP0 stack, with SS null). */
isr_common:
        lea     state(%rip), %rbx
        popq    ST_VECTOR(%rbx)
        popq    ST_ERROR(%rbx)
        popq    ST_RIP(%rbx)
        mov     %rdx, ST_VALUE(%rbx)
        mov     %cr2, %rax
        mov     %rax, ST_CR2(%rbx)
        mov     ST_RSP(%rbx), %rsp
        pushq   $RFLAGS_CLEAN
        popfq
        jmp     *ST_RESUME(%rbx)

/* -- the user page: the access snippets, mapped a second time U/S=1 and read-only for CPL-3 accesses -- */
        .balign 4096
user_page:
snip_read:
        mov     (%rax), %rdx
read_done:
        ud2
snip_write:
        mov     %rdx, (%rax)
write_done:
        ud2
snip_fetch:
        jmp     *%rax
        .balign 4096
user_page_end:

/* The data follows, 8-byte aligned; nothing may come after this label in the code. */
        .balign 8
state:
