/*
 * The QEMU AMD nested-paging probe stub: a bare-metal x86-64 host that enables SVM and, for each case,
 * VMRUNs a guest with nested paging on (the case image's nested tables at nCR3, its guest tables at the
 * guest's CR3) into a snippet that performs one access at the case's guest VA, and records the #VMEXIT:
 * its exit code, EXITINFO1, EXITINFO2, the guest RIP and RDX (the value a load read).
 * pagetable/vectors/x86_64/svm.py assembles it, appends its data (the state block, the host's page tables,
 * the harness's guest and nested tables, the VMCB, the host save area, the GDT, cases and output area) and
 * describes the whole harness; docs/qemu.md too.
 *
 * AMD64 Architecture Programmer's Manual Vol. 2 (Pub. 24593): 15.4 "Enabling SVM" (EFER.SVME, CPUID
 * Fn8000_0001_ECX[SVM]); 15.5 "VMRUN Instruction" (15.5.1 "Basic Operation": RAX holds the VMCB's physical
 * address, the host state goes to the area VM_HSAVE_PA names; 15.30.4 VM_HSAVE_PA MSR C001_0117h); 15.6
 * "#VMEXIT" (the host's RAX, RSP, RIP and segments come back from the save area, the other general-purpose
 * registers keep the guest's values); 15.9-15.12 intercepts; 15.25 "Nested Paging" (CPUID Fn8000_000A_EDX
 * [NP]); Appendix B "Layout of VMCB".  Intel-style mode switch: 14.6 / 14.8 of Vol. 2 (long mode).
 *
 * Build: x86_64-linux-gnu-as, ld -Ttext=0, objcopy -O binary; every number shared with the harness comes
 * with --defsym.  Entry (from boot.S): 32-bit protected mode, flat segments, paging off, EBX = the stub's
 * physical base.  The host runs identity-mapped (VA = PA) under its own tables at ST_HOST_CR3, at CPL 0.
 *
 * A probe: the host writes the case's guest RIP (a snippet on the guest page, which the harness's guest
 * tables map as a user page and, for CPL 0, as a supervisor one, and the nested tables map), RAX = the
 * guest VA, CS/SS/CPL (CPL 0 or 3) and RFLAGS (the run's AC) into the VMCB and executes
 * VMRUN with RDX = the value to store (the guest's RDX is the host's: VMRUN does not load it).  Every
 * exception, INTn, VMMCALL and shutdown are intercepted, so the guest never delivers an event itself: a
 * load or store that succeeds reaches the snippet's VMMCALL (exit 0x81, RDX = what the load read); a
 * fetch that succeeds executes the tag's 0xCC byte at the VA, INT3 (QEMU intercepts it as INTn, exit
 * 0x75, RIP = VA; the APM's exception intercept of #BP would give exit 0x43); a guest #PF exits with 0x4E,
 * EXITINFO1 = the error code and EXITINFO2 = the faulting address (15.12.15); a nested page fault with
 * 0x400 (15.25.6).  A write probe is a load and then, in a second VMRUN, a store of what it read.
 */

        .ifndef ST_VMCB
        .error "svm.S needs the harness's --defsym values (pagetable/vectors/x86_64/svm.py builds it)"
        .end
        .endif

        /* The result record is filled in order, from the VMCB's adjacent exit fields. */
        .if RES_EXIT_CODE | (RES_EXITINFO1 - 8) | (RES_EXITINFO2 - 16) | (RES_RIP - 24) | (RES_VALUE - 32)
        .error "svm.S fills a result record with EXITCODE, EXITINFO1, EXITINFO2, RIP and RDX in this order"
        .endif
        .if (VMCB_EXITINFO1 - VMCB_EXITCODE - 8) | (VMCB_EXITINFO2 - VMCB_EXITCODE - 16)
        .error "svm.S copies EXITCODE, EXITINFO1 and EXITINFO2 as three adjacent u64s of the VMCB"
        .endif

        .text
        .globl _start

/* Send the bytes [\from, \from + \count) to COM1 and end the run through isa-debug-exit (QEMU exits with
 * status (EXIT_VALUE << 1) | 1).  No wait for THR empty: QEMU's 16550 hands each byte written to THR to
 * its file chardev at once (serial_xmit in hw/char/serial.c), so the register is empty again before the
 * next OUTSB. */
        .macro report from, count
        mov     \from, %esi
        mov     \count, %ecx
        mov     $COM1, %dx
        rep outsb
        finish
        .endm

/* -- 32-bit protected mode: CPUID, then long mode -------------------------------------------------- */
        .code32
_start:
        mov     %ebx, %ebp                      /* the stub's physical base (CPUID clobbers EBX) */
        lea     (state - _start)(%ebp), %esi
        mov     ST_OUT_PA(%esi), %edi
        /* CPUID Fn8000_0001 (ECX: SVM, EDX: long mode, NX), Fn8000_0008 (physical-address width) and
         * Fn8000_000A (EDX: NP), for the harness to check and the walker to follow (APM Vol. 3, CPUID). */
        mov     $0x80000001, %eax
        cpuid
        mov     %ecx, HDR_EXT1_ECX(%edi)
        mov     %edx, HDR_EXT1_EDX(%edi)
        mov     $0x80000008, %eax
        cpuid
        mov     %eax, HDR_EXT8_EAX(%edi)
        testl   $CPUID_SVM, HDR_EXT1_ECX(%edi)
        jz      no_svm
        mov     $0x8000000a, %eax
        cpuid
        mov     %edx, HDR_EXTA_EDX(%edi)
        test    $CPUID_NP, %edx
        jnz     1f
no_svm:
        movl    $STATUS_NO_SVM, HDR_STATUS(%edi)
        report  %edi, $HDR_SIZE
1:
        /* Long mode (macros.S; EFER with SVME, 15.4, and the run's NXE, which the nested walk follows). */
        enter_long_mode $CR4_PAE, ST_HOST_CR3, ST_HOST_EFER, ST_GDTR, ST_STACK, $HOST_CR0

/* -- 64-bit mode, CPL 0 ------------------------------------------------------------------------------ */
        .code64
long64:
        cld                                     /* string instructions count up */
        lea     state(%rip), %rbx
        mov     $KERNEL_DS, %eax
        mov     %eax, %ss
        mov     %eax, %ds
        mov     %eax, %es
        /* VM_HSAVE_PA (15.30.4): where VMRUN saves the host's state. */
        mov     $MSR_VM_HSAVE_PA, %ecx
        mov     ST_HSAVE(%rbx), %rax
        xor     %edx, %edx
        wrmsr
        /* The guest's PKRU: VMRUN neither loads nor saves it (it is not in the VMCB, Appendix B), so the
         * guest runs with the host's.  WRPKRU needs CR4.PKE (Intel SDM Vol. 2, WRPKRU; the register keeps its
         * value with PKE clear): set for it alone, so that the host's walk and the nested one (which has
         * the host's paging controls, 15.25) run without protection keys.  PKRU is 0 from reset. */
        mov     ST_GUEST_PKRU(%rbx), %esi
        test    %esi, %esi
        jz      next_case
        mov     %cr4, %rax
        or      $CR4_PKE, %rax
        mov     %rax, %cr4
        mov     %esi, %eax
        xor     %ecx, %ecx
        xor     %edx, %edx
        wrpkru
        mov     %cr4, %rax
        and     $~CR4_PKE, %rax
        mov     %rax, %cr4

next_case:
        lea     state(%rip), %rbx
        mov     ST_CASE(%rbx), %r12
        cmp     ST_CASE_END(%rbx), %r12
        jae     output
        xor     %edx, %edx                      /* the value a store writes, until a load read one */
        mov     CASE_RIP1(%r12), %rcx
        call    run_guest
        cmpq    $0, CASE_RIP2(%r12)
        je      record
        mov     CASE_RIP2(%r12), %rcx           /* a write probe: store what the load read (RDX) */
        call    run_guest

record:
        mov     ST_RESULT(%rbx), %rdi
        lea     VMCB_EXITCODE(%r13), %rsi       /* EXITCODE, EXITINFO1, EXITINFO2: adjacent (Table B-1) */
        mov     $3, %ecx
        rep movsq
        mov     VMCB_RIP(%r13), %rax
        stosq                                   /* RES_RIP */
        mov     %rdx, %rax
        stosq                                   /* RES_VALUE */
        mov     %rdi, ST_RESULT(%rbx)
        addq    $CASE_SIZE, ST_CASE(%rbx)
        jmp     next_case

/* One VMRUN (15.5) of case r12 at guest RIP rcx, with RDX passed through; returns with RBX = the state
 * block, R12 = the case, R13 = the VMCB and RDX = the guest's RDX. */
run_guest:
        mov     ST_VMCB(%rbx), %r13
        mov     CASE_VA(%r12), %rax
        mov     %rax, VMCB_RAX(%r13)
        mov     %rcx, VMCB_RIP(%r13)
        mov     CASE_CS(%r12), %eax             /* selector (16 bits) and attributes (16 bits) */
        mov     %eax, VMCB_CS(%r13)
        mov     CASE_SS(%r12), %eax
        mov     %eax, VMCB_SS(%r13)
        mov     CASE_CPL(%r12), %eax
        mov     %al, VMCB_CPL(%r13)
        mov     ST_GUEST_RFLAGS(%rbx), %rax      /* RFLAGS: bit 1, and AC as the run says */
        mov     %rax, VMCB_RFLAGS(%r13)
        movq    $0, VMCB_RSP(%r13)
        movq    $NO_EXIT, VMCB_EXITCODE(%r13)
        movq    $0, VMCB_EXITINFO1(%r13)
        movq    $0, VMCB_EXITINFO2(%r13)
        mov     %r13, %rax
        vmrun
        /* #VMEXIT (15.6): RAX, RSP and RIP are the host's again; the other registers are the guest's. */
        lea     state(%rip), %rbx
        mov     ST_CASE(%rbx), %r12
        mov     ST_VMCB(%rbx), %r13
        ret

output:
        mov     ST_OUT_END(%rbx), %rcx
        sub     ST_OUT_START(%rbx), %rcx
        report  ST_OUT_START(%rbx), %ecx

/* -- the guest page: the access snippets, which the harness maps in the guest's tables (a user page) and
 * in the nested tables -------------------------------------------------------------------------------- */
        .balign 4096
guest_page:
snip_read:
        mov     (%rax), %rdx
read_done:
        vmmcall
snip_write:
        mov     %rdx, (%rax)
write_done:
        vmmcall
snip_fetch:
        jmp     *%rax
        .balign 4096
guest_page_end:

        .balign 8
state:
