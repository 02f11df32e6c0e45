"""HTTP semantics netboot needs to serve disk images: byte ranges, validators, paths."""
