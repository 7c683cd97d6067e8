/*
 * The reset-vector ROM of the QEMU x86 probe harness (pagetable/vectors/x86_64/qemu.py): qemu-system-x86_64
 * -M pc runs it as its BIOS (-bios), 64 KiB mapped at 0xFFFF0000..0xFFFFFFFF.  It takes the processor from
 * the reset state to 32-bit protected mode with flat segments and paging off, and jumps to the probe stub
 * (stub.S), which the generic loader has put at physical STUB_BASE, with EBX = STUB_BASE.
 *
 * Intel SDM Vol. 3A (Order No. 253668), chapter 10 "Processor Management and Initialization" (chapter 9
 * in editions before 2023): 10.1.4 "First Instruction Executed" (after reset CS.base = 0xFFFF0000 and
 * EIP = 0xFFF0, so the first instruction is at 0xFFFFFFF0, in real-address mode), 10.9.1 "Switching to
 * Protected Mode" (LGDT, then MOV CR0 with PE=1, then a far JMP to reload CS).  Segment descriptors:
 * 3.4.5 "Segment Descriptors"; the harness builds their values and passes them with --defsym, as it does
 * every other number shared with it (CR0 bits from pagetable/arch/x86_64/regs.py).
 *
 * Build: x86_64-linux-gnu-as, ld -Ttext=0, objcopy -O binary: linked at 0, the code addresses itself
 * through CS (base 0xFFFF0000) in real mode and at ROM_BASE + offset in protected mode.
 */

        .ifndef STUB_BASE
        .error "boot.S needs the harness's --defsym values (pagetable/vectors/x86_64/qemu.py builds it)"
        .end
        .endif

        .equ ROM_BASE, 0xffff0000       /* where QEMU maps a 64 KiB -bios image (ending at 4 GiB) */
        .equ ROM_SIZE, 0x10000
        .equ RESET_OFFSET, 0xfff0       /* 0xFFFFFFF0 - ROM_BASE */

        .text
        .globl _start
_start:
        .balign 8
gdt:    .quad 0                         /* the null descriptor */
        .quad DESC_CODE64               /* KERNEL_CS: not used here, the stub's own GDT has the same */
        .quad DESC_DATA                 /* KERNEL_DS: flat data, 4 GiB */
        .quad DESC_CODE32               /* BOOT_CS: flat 32-bit code */
gdt_end:
gdt_ptr:
        .word   gdt_end - gdt - 1
        .long   ROM_BASE + gdt

        .code16
start16:
        cli
        cld
        lgdtl   %cs:gdt_ptr             /* a 32-bit base with the operand-size prefix */
        mov     %cr0, %eax
        and     $~(CR0_CD | CR0_NW), %eax   /* caches on: KVM runs a CD=1 guest uncached */
        or      $CR0_PE, %eax
        mov     %eax, %cr0
        ljmpl   $BOOT_CS, $(ROM_BASE + start32)

        .code32
start32:
        mov     $KERNEL_DS, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     %eax, %fs
        mov     %eax, %gs
        mov     $STUB_BASE, %ebx
        jmp     *%ebx

        .code16
        .org    RESET_OFFSET
reset:
        jmp     start16
        .org    ROM_SIZE
