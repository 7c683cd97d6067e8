"""RISC-V test vectors: the vector modes (`modes`), the generator (`gen`) and the QEMU harness (`qemu`)."""
