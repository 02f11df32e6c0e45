"""iPXE: the scripts the server hands to PCs running iPXE (pure text rendering)."""
