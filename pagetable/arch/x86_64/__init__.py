"""x86_64 (4- and 5-level paging, EPT): on the roadmap, not implemented yet."""
