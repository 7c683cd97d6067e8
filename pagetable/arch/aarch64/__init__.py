"""AArch64 (stage 1 and stage 2, 4K/16K/64K granules): on the roadmap, not implemented yet."""
