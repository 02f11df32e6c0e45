"""The lab's process plumbing: namespaces, processes, captures, QEMU guests, client crowds.

`netboot` decides and `netboot_services` serves; this package is the other
adapter floor beside it: what the QEMU lab (`netboot lab`), the root-only
tests and the benchmarks run to put the daemon and its clients on a network
of their own. `netns` makes the namespaces (the one `ip()` wrapper),
`process` starts, watches and stops programs and captures, `lab` is the
QEMU lab (`BootLab`), `mac` the simulated Mac, `root_image` a Mac's root
image reads, `qemu` the KVM probe, `assets` Debian's kernel and busybox,
`daemon` the daemon as a child with its log read live, `loss` impaired
links, `factories` small NBI sets, and `fuzzer`, `fuzz_harness`,
`storm_client`, `storm_lab` the reliability runs the tests and benchmarks
share; `ipv6` the IPv6 link (no DAD, the lab's ULA), `dhcp6_clients` the
real DHCPv6 clients (dhclient -6, dhcpcd) and `perfdhcp` Kea's load
generator with its report read. Installed with the distribution (`services/` source root), so a
benchmark imports it without touching sys.path.
"""
