"""Reliability tests: the real daemon, in network namespaces, under hostile and sustained input.

The fuzz (issue #10): `netboot_lab.fuzzer` is both a library and a program; it
runs inside a lab's client namespace as its own process, so the datagrams it
sends cross a real veth pair and the daemon's real sockets, as an attacker's
would. `netboot_lab.fuzz_harness` sets up that lab and reads the daemon's
counters; `test_fuzz` (the CI form) and `benchmarks/fuzz.py` (the full form)
differ only in size. The storm's clients and lab are `netboot_lab.storm_client`
and `netboot_lab.storm_lab`, shared with `benchmarks/storm.py` the same way.
"""
