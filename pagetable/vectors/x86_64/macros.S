/* The macros the x86 harness's assembly files share (prepended to each by `qemu.stub_source`). */

/* QEMU "pc" machine: COM1 (16550A) and the isa-debug-exit device the harness adds. */
        .equ COM1, 0x3f8                /* transmit holding register */
        .equ COM1_LSR, 0x3fd            /* line status register */
        .equ LSR_THRE, 0x20             /* LSR bit 5: THR empty */

/* Send the bytes [\from, \to) to COM1, waiting for THR empty before each (clobbers AL, DX).  Macros use
 * labels of their own (\@): a numeric label in one would capture a caller's 1f. */
        .macro send from, to
.Lsend\@:
        cmp     \to, \from
        jae     .Lsent\@
        mov     $COM1_LSR, %dx
.Lwait\@:
        in      %dx, %al
        test    $LSR_THRE, %al
        jz      .Lwait\@
        mov     (\from), %al
        mov     $COM1, %dx
        out     %al, %dx
        inc     \from
        jmp     .Lsend\@
.Lsent\@:
        .endm

/* End the run: isa-debug-exit makes QEMU exit with status (EXIT_VALUE << 1) | 1. */
        .macro finish
.Lfinish\@:
        mov     $EXIT_VALUE, %al
        out     %al, $EXIT_PORT
        hlt
        jmp     .Lfinish\@
        .endm

/* The step into IA-32e mode.  From 32-bit protected mode with paging off, %esi holding the state block's physical
 * address and %ebp the code's (Intel SDM Vol. 3A 10.8.5, AMD APM Vol. 2 14.6.1): CR4 with PAE (and LA57)
 * while paging is off, CR3, IA32_EFER.LME (and the run's NXE, SVME), the GDT, CR0.PG -- now in
 * compatibility mode -- then a far return into the 64-bit code segment KERNEL_CS at `long64`.  The macro's
 * arguments name where each value comes from: `cr4` an operand, the others fields of the state block. */
        .macro enter_long_mode cr4, cr3, efer, gdtr, stack, cr0_bits
        mov     \cr4, %eax
        mov     %eax, %cr4
        mov     \cr3(%esi), %eax
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx
        mov     \efer(%esi), %eax
        xor     %edx, %edx
        wrmsr
        lgdt    \gdtr(%esi)
        mov     %cr0, %eax
        or      \cr0_bits, %eax
        mov     %eax, %cr0
        mov     \stack(%esi), %esp
        push    $KERNEL_CS
        lea     (long64 - _start)(%ebp), %eax
        push    %eax
        lret
        .endm

/* The exception entry points: `isr_table`, one 16-byte entry per vector 0-31 (the gate of vector v points at
 * isr_table + 16 v), each pushing 0 in place of an error code for the vectors without one, then the vector
 * (with \push: pushq in 64-bit code, pushl in 32-bit), and jumping to the file's `isr_common`; `isr_end`
 * after them.  Vectors with an error code: #DF (8), #TS (10), #NP (11), #SS (12), #GP (13), #PF (14),
 * #AC (17), #CP (21), #VC (29), #SX (30); Intel SDM Vol. 3A Table 6-1. */
        .macro isr_entry vector, error, push
        .balign 16
        .if \error == 0
        \push   $0
        .endif
        \push   $\vector
        jmp     isr_common
        .endm

        .macro isr_table push
        .balign 16
isr_table:
        isr_entry 0, 0, \push
        isr_entry 1, 0, \push
        isr_entry 2, 0, \push
        isr_entry 3, 0, \push
        isr_entry 4, 0, \push
        isr_entry 5, 0, \push
        isr_entry 6, 0, \push
        isr_entry 7, 0, \push
        isr_entry 8, 1, \push
        isr_entry 9, 0, \push
        isr_entry 10, 1, \push
        isr_entry 11, 1, \push
        isr_entry 12, 1, \push
        isr_entry 13, 1, \push
        isr_entry 14, 1, \push
        isr_entry 15, 0, \push
        isr_entry 16, 0, \push
        isr_entry 17, 1, \push
        isr_entry 18, 0, \push
        isr_entry 19, 0, \push
        isr_entry 20, 0, \push
        isr_entry 21, 1, \push
        isr_entry 22, 0, \push
        isr_entry 23, 0, \push
        isr_entry 24, 0, \push
        isr_entry 25, 0, \push
        isr_entry 26, 0, \push
        isr_entry 27, 0, \push
        isr_entry 28, 0, \push
        isr_entry 29, 1, \push
        isr_entry 30, 1, \push
        isr_entry 31, 0, \push
        .balign 16
isr_end:
        .endm
