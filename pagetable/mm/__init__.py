"""Memory management (MemorySet, backends, AddrSpace, GuestAddrSpace): issue 3, not implemented yet."""
