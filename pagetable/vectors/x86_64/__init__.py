"""x86-64 vectors: the image conventions (`layout`) and the QEMU probe harness (`qemu`, with `stub.S` and
`boot.S`)."""
