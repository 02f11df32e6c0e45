"""The QEMU lab: real firmware booting through our own services, in a namespace."""
