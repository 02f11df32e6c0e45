"""The QEMU lab's pure parts: guest command lines, boot stages, the marker initrd.

What runs processes (namespaces, QEMU, captures, the KVM probe) is the
adapter package `netboot_lab`.
"""
