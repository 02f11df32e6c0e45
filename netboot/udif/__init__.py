"""Apple disk images: recognising them, and (later) reading and writing UDIF."""
