"""Issue #10, full form: a million fuzzed datagrams at `netboot serve`, with the CI checks.

Run from the repository root, as root (it creates network namespaces), after
`./bootstrap.sh test`:

    .venv/bin/python benchmarks/fuzz.py [--count 1000000] [--seed N] [--json]

What it does
------------
The same run as tests/reliability/test_fuzz.py, larger: the daemon in the
server namespace of a veth lab on 10.253.1.0/24 (the CI test uses 10.253.0, so
both can run at once), the fuzzer (netboot_lab/fuzzer.py) in the client
namespace sending `--count` random, mutated, structured and scapy-fuzzed
datagrams to UDP 67, 4011, 69 and a live transfer's port, then `--count6`
DHCPv6 messages and relay-forwards to UDP 547 (with `[dhcp6]` in full mode on
the lab's IPv6 ULA; a dhclient -6 lease is asked for afterwards), `--http-count`
malformed HTTP requests and `--slowloris` slow connections, while its prober
asks for a BSDP list and a 3000-byte TFTP file every ~100 ms.

The fuzzer is closed-loop: after about 100 KiB per daemon socket it waits for
the answer to a sync request on each, so the rate printed is what the daemon
sustains with nothing dropped by the kernel (UDP RcvbufErrors of the server
namespace are checked). It is bound by the daemon and the fuzzer sharing the
machine's cores, so it says more about a machine than about a release.

How to read it
--------------
* `datagrams/s`: fuzzed datagrams per second over the sending phase.
* `expected` vs `counted`: what the fuzzer's classification (our own codecs)
  says the daemon must count, and what `/status.json` says it counted. They
  must be equal; every failed check is printed and makes the exit status 1.
* `probe`: the well-behaved client's answers and latencies under the fuzz.

Results on the 2-core development VM (2026-12-01, seed 1, other jobs sharing
the cores): 1,000,000 datagrams in 302 s, 3,309 datagrams/s on average (1,800
to 6,100/s per 50,000 as the other load came and went); every counter equal to
its expectation (dhcp: 580,404 datagrams, 336,126 malformed; tftp: 287,706
malformed), no kernel drop, 2,731 of 2,731 BSDP and TFTP probes answered at
the first try (p99 219 ms and 188 ms), 2,000 malformed HTTP requests all 4xx
or cut, 8 slowloris connections closed 1.5 s after their last byte; the
daemon's RSS went from 47.9 to 50.6 MB. The CI form (50,000) takes ~20-25 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from netboot_lab.fuzz_harness import fuzz_run, problems, summary

SUBNET = "10.253.1"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="datagrams to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--http-count", type=int, default=2000, help="malformed HTTP requests")
    parser.add_argument("--slowloris", type=int, default=8, help="slow HTTP connections")
    parser.add_argument(
        "--count6",
        type=int,
        default=100_000,
        help="DHCPv6 datagrams to UDP 547 with [dhcp6] on (0: IPv4 only, [dhcp6] off)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="bound on the sending phase"
    )
    parser.add_argument(
        "--log-level", default="info", help="the daemon's log level (info is the shipped default)"
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    return parser.parse_args(argv)


def terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwind: stop the daemon, remove the namespaces


def print_text(result: dict[str, object], found: list[str]) -> None:
    data = json.loads(json.dumps(result))
    print(
        f"{data['datagrams']} datagrams in {data['fuzz_seconds']} s: "
        f"{data['datagrams_per_second']} datagrams/s (whole run {data['seconds_total']} s)"
    )
    timeline = data["timeline"] or []
    for (count, seconds), (previous, before) in zip(
        timeline, [(0, 0.0), *timeline[:-1]], strict=True
    ):
        rate = (count - previous) / (seconds - before)
        print(f"  {count:>9} sent at {seconds:8.1f} s ({rate:.0f}/s)")
    print(
        f"daemon RSS: {data['daemon_rss_kib']['before']} KiB before, "
        f"{data['daemon_rss_kib']['after']} KiB after"
    )
    for port, kinds in data["sent"].items():
        detail = ", ".join(f"{kind} {number}" for kind, number in kinds.items())
        print(f"  to {port}: {sum(kinds.values())} ({detail})")
    expected, counted = data["expected"], data["counted"]
    print(
        f"dhcp: datagrams {counted['dhcp'].get('datagrams')}, malformed "
        f"{counted['dhcp'].get('malformed')} (expected {expected['dhcp']['expected_malformed']}: "
        f"{expected['dhcp']['refused_by_parse_packet']} parse_packet + "
        f"{expected['dhcp']['malformed_by_bsdp_policy']} BSDP policy), handler_errors "
        f"{counted['dhcp'].get('handler_errors')}"
    )
    print(
        f"tftp: malformed {counted['tftp'].get('malformed_packets')} (expected "
        f"{expected['tftp']['expected_malformed']}), stray {counted['tftp'].get('stray_packets')} "
        f"(expected >= {expected['tftp']['expected_stray_min']})"
    )
    if data["dhcp6"]:
        dhcp6, counted6 = data["dhcp6"], counted.get("dhcp6", {})
        print(
            f"dhcp6: {dhcp6.get('count')} fuzzed at {dhcp6.get('datagrams_per_second')}/s, "
            f"datagrams {counted6.get('datagrams')}, malformed {counted6.get('malformed')} "
            f"(parse_message refuses {dhcp6.get('refused_by_parse_message')}), handler_errors "
            f"{counted6.get('handler_errors')}; dhclient -6 afterwards: {data['dhcp6_client']}"
        )
    print(f"kernel drops (UDP RcvbufErrors): {data['kernel_drops']}")
    for name in ("bsdp", "tftp"):
        print(f"probe {name}: {data['probe'][name]}")
    http = data["http"]
    print(f"http: {sum(http.get('cases', {}).values())} requests, {http.get('statuses')}")
    print(f"slowloris: {data['slowloris']}")
    print("PASS" if not found else "FAIL:\n  " + "\n  ".join(found))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: it creates network namespaces", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with tempfile.TemporaryDirectory(prefix="netboot-fuzz-") as work:
            result = fuzz_run(
                Path(work),
                SUBNET,
                count=args.count,
                seed=args.seed,
                http_count=args.http_count,
                slowloris=args.slowloris,
                max_seconds=args.max_seconds,
                log_level=args.log_level,
                dhcp6_count=args.count6,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    found = problems(result, args.count)
    numbers = summary(result)
    if args.json:
        print(json.dumps({"seed": args.seed, "problems": found, **numbers}, indent=1))
    else:
        print_text(numbers, found)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
