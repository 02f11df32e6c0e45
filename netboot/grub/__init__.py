"""GRUB configurations for the signed shim -> GRUB chain, rendered from the catalog."""
