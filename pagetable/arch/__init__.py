"""Per-architecture entry layouts, modes, walk rules and control registers."""
