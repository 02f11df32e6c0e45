"""GRUB for the signed shim -> GRUB chain: configurations rendered from the catalog, and
the watch for a GRUB that asks another host for its configuration."""
