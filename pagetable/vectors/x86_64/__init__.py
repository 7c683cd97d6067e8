"""x86-64 test vectors (4-level and 5-level paging). `layout`: the physical layout every x86 vector set
shares (RAM base and size, the RAM tag, the PML4/PML5 slot left to a harness)."""
