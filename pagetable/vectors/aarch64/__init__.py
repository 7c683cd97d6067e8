"""AArch64 (VMSAv8-64) test vectors: for now only the QEMU probe harness (`qemu`, with `stub.S`) and the
physical layout vector sets share with it (`layout`: RAM, the RAM tag, the root-table slots left to the
harness).  The architecture's registry entry comes later."""
