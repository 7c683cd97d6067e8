"""User pointers (UserPtr, UserConstPtr, AddrSpaceProvider): issue 4, not implemented yet."""
