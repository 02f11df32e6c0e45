"""The DHCPv6 lease store (`netboot.dhcp6.leases`, docs/protocols/dhcpv6.md §10).

Stores live in SQLite files under `tmp_path`, so the tests cross the disk
format; the time is an argument the test moves by hand. IAs are numbered:
`ia(n)` is a DUID-LL of a made-up MAC with IAID n % 2. Addresses are `ip(n)`,
host n of the pool's /64. The property test checks, over the leases the store
*returned* (what clients act on), that no address is ever held by two IAs.
"""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from netboot.dhcp.lease_file import APPLICATION_ID, SCHEMA_VERSION, LeaseDatabaseError
from netboot.dhcp.leases import AddressPool, LeaseState, LeaseStore
from netboot.dhcp6.leases import Address6Pool, IaKey, Lease6, Lease6Store
from netboot.dhcp6wire.duid import Duid, build_duid
from netboot.dhcp6wire.options import DuidType
from netboot.macaddr import MacAddress, mac_from_bytes

NOW = 1_700_000_000.0
NET = IPv6Address("fd4e:4254:0:1::")
LEASE = 3600.0


def ip(host: int) -> IPv6Address:
    return NET + host


def pool(first: int = 0x1000, last: int = 0x1003) -> Address6Pool:
    return Address6Pool(ip(first), ip(last))


def mac(number: int) -> MacAddress:
    return mac_from_bytes(bytes((2, 0, 0, 0, 0, number)))


def ia(number: int, iaid: int = 1) -> IaKey:
    duid = build_duid(Duid(DuidType.LL, bytes((2, 0, 0, 0, 0, number)), hardware_type=1))
    return IaKey(duid, iaid)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "leases.db"


def open_store(path: Path | str, the_pool: Address6Pool | None = None) -> Lease6Store:
    return Lease6Store(path, the_pool or pool(), offer_hold=30, quarantine=600)


def test_an_offer_then_a_request_binds_the_offered_address(db: Path) -> None:
    with open_store(db) as store:
        offered = store.offer(ia(1), mac(1), None, NOW)
        assert offered is not None and offered.address == ip(0x1000)
        assert offered.state is LeaseState.OFFERED and offered.expires == NOW + 30
        bound = store.bind(ia(1), mac(1), None, LEASE, NOW + 1)
        assert bound == Lease6(ip(0x1000), ia(1), mac(1), LeaseState.BOUND, NOW + 1 + LEASE)
        assert store.offer(ia(2), mac(2), None, NOW + 2) is not None
        assert store.lease_for(ia(2)) is not None
        assert store.lease_for(ia(2)).address == ip(0x1001)  # type: ignore[union-attr]


def test_two_ias_of_one_duid_get_two_addresses(db: Path) -> None:
    with open_store(db) as store:
        first = store.bind(ia(1, iaid=1), mac(1), None, LEASE, NOW)
        second = store.bind(ia(1, iaid=2), mac(1), None, LEASE, NOW)
        assert first is not None and second is not None
        assert first.address != second.address


def test_a_held_offer_is_not_offered_to_another_ia_until_it_lapses(db: Path) -> None:
    with open_store(db, pool(0x1000, 0x1000)) as store:
        assert store.offer(ia(1), mac(1), None, NOW) is not None
        assert store.offer(ia(2), mac(2), None, NOW + 29) is None
        late = store.offer(ia(2), mac(2), None, NOW + 31)
        assert late is not None and late.address == ip(0x1000)


def test_the_pool_runs_out(db: Path) -> None:
    with open_store(db) as store:
        for number in range(4):
            assert store.bind(ia(number), mac(number), None, LEASE, NOW) is not None
        assert store.offer(ia(9), mac(9), None, NOW) is None
        assert store.bind(ia(9), mac(9), None, LEASE, NOW) is None
        assert store.counts(NOW) == {"offered": 0, "bound": 4, "quarantined": 0, "free": 0}


def test_a_hint_in_the_pool_is_honoured_and_one_outside_is_not(db: Path) -> None:
    with open_store(db) as store:
        hinted = store.offer(ia(1), mac(1), ip(0x1002), NOW)
        assert hinted is not None and hinted.address == ip(0x1002)
        outside = store.offer(ia(2), mac(2), ip(0x2000), NOW)
        assert outside is not None and outside.address == ip(0x1000)
        taken = store.offer(ia(3), mac(3), ip(0x1002), NOW)
        assert taken is not None and taken.address == ip(0x1001)


def test_a_client_gets_its_previous_address_back_after_release(db: Path) -> None:
    with open_store(db) as store:
        store.bind(ia(1), mac(1), None, LEASE, NOW)
        store.bind(ia(2), mac(2), None, LEASE, NOW)
        assert store.release(ia(1), ip(0x1000), NOW + 5)
        assert not store.release(ia(1), ip(0x1000), NOW + 6)  # nothing left to release
        again = store.offer(ia(1), mac(1), None, NOW + 10)
        assert again is not None and again.address == ip(0x1000)


def test_a_released_address_goes_to_others_only_after_the_never_used_ones(db: Path) -> None:
    with open_store(db) as store:
        store.bind(ia(1), mac(1), None, LEASE, NOW)
        store.release(ia(1), ip(0x1000), NOW + 1)
        fresh = store.offer(ia(2), mac(2), None, NOW + 2)
        assert fresh is not None and fresh.address == ip(0x1001)
        for number in (3, 4):
            store.bind(ia(number), mac(number), None, LEASE, NOW + 3)
        reused = store.offer(ia(5), mac(5), None, NOW + 4)
        assert reused is not None and reused.address == ip(0x1000)


def test_a_declined_address_is_quarantined_for_everyone(db: Path) -> None:
    with open_store(db, pool(0x1000, 0x1001)) as store:
        store.bind(ia(1), mac(1), None, LEASE, NOW)
        assert not store.decline(ia(2), ip(0x1000), NOW)  # not its address
        assert store.decline(ia(1), ip(0x1000), NOW + 1)
        moved = store.bind(ia(1), mac(1), None, LEASE, NOW + 2)
        assert moved is not None and moved.address == ip(0x1001)
        assert store.offer(ia(2), mac(2), None, NOW + 2) is None
        assert store.counts(NOW + 2)["quarantined"] == 1
        after = store.offer(ia(2), mac(2), None, NOW + 1 + 601)
        assert after is not None and after.address == ip(0x1000)


def test_extend_renews_only_the_ias_own_held_address(db: Path) -> None:
    with open_store(db) as store:
        store.bind(ia(1), mac(1), None, LEASE, NOW)
        extended = store.extend(ia(1), ip(0x1000), LEASE, NOW + 1800)
        assert extended is not None and extended.expires == NOW + 1800 + LEASE
        assert store.extend(ia(2), ip(0x1000), LEASE, NOW) is None
        assert store.extend(ia(1), ip(0x1003), LEASE, NOW) is None
        # an expired binding nobody took since is still the IA's
        assert store.extend(ia(1), ip(0x1000), LEASE, NOW + 10 * LEASE) is not None
        store.release(ia(1), ip(0x1000), NOW + 11 * LEASE)
        assert store.extend(ia(1), ip(0x1000), LEASE, NOW + 11 * LEASE) is None


def test_a_stray_solicit_does_not_shorten_a_binding(db: Path) -> None:
    with open_store(db) as store:
        bound = store.bind(ia(1), mac(1), None, LEASE, NOW)
        assert store.offer(ia(1), mac(1), None, NOW + 5) == bound


def test_leases_survive_reopening_the_file(db: Path) -> None:
    with open_store(db) as store:
        bound = store.bind(ia(1), mac(1), None, LEASE, NOW)
        store.decline(ia(2), ip(0x1001), NOW)
    with open_store(db) as store:
        assert store.lease_for(ia(1)) == bound
        assert store.holder(ip(0x1000), NOW + 1) == bound
        again = store.offer(ia(3), mac(3), None, NOW + 1)
        assert again is not None and again.address == ip(0x1001)


def test_the_ipv4_and_ipv6_stores_share_one_file_in_either_order(db: Path) -> None:
    v4_pool = AddressPool(IPv4Address("10.0.0.10"), IPv4Address("10.0.0.20"))
    with open_store(db) as v6, LeaseStore(db, v4_pool, lambda: NOW) as v4:
        assert v6.bind(ia(1), mac(1), None, LEASE, NOW) is not None
        assert v4.bind(b"\x01x", mac(1), IPv4Address("10.0.0.10"), LEASE) is not None
    other = db.with_name("other.db")
    with LeaseStore(other, v4_pool, lambda: NOW), open_store(other) as v6:
        assert v6.offer(ia(1), mac(1), None, NOW) is not None


V1_SCHEMA = (
    "CREATE TABLE lease (address INTEGER PRIMARY KEY, client_id BLOB NOT NULL,"
    " mac TEXT NOT NULL, state TEXT NOT NULL, expires REAL NOT NULL, hostname TEXT,"
    " seq INTEGER NOT NULL)",
    "CREATE INDEX lease_by_client ON lease (client_id, seq)",
    "CREATE INDEX lease_by_expiry ON lease (expires)",
    "INSERT INTO lease VALUES (167772170, x'0178', 'aa:bb:cc:dd:ee:ff', 'bound', 1e12, 'pc', 1)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    "PRAGMA user_version = 1",
)


def test_an_ipv4_lease_file_of_schema_1_gains_the_lease6_table(db: Path) -> None:
    with sqlite3.connect(db) as old:
        for statement in V1_SCHEMA:
            old.execute(statement)
    old.close()
    with open_store(db) as store:
        assert store.bind(ia(1), mac(1), None, LEASE, NOW) is not None
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
    check.close()
    assert {"lease", "lease6", "lease6_by_ia"} <= tables
    v4_pool = AddressPool(IPv4Address("10.0.0.10"), IPv4Address("10.0.0.20"))
    with LeaseStore(db, v4_pool, lambda: NOW) as v4:
        kept = v4.lease_at(IPv4Address("10.0.0.10"))
        assert kept is not None and kept.hostname == "pc" and kept.state is LeaseState.BOUND


def test_a_newer_lease_file_is_refused_by_the_ipv6_store_too(db: Path) -> None:
    open_store(db).close()
    with sqlite3.connect(db) as other:
        other.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    other.close()
    with pytest.raises(LeaseDatabaseError, match="newer"):
        open_store(db)


@pytest.mark.parametrize(
    ("first", "last", "problem"),
    [
        ("fd00::2", "fd00::1", "after its end"),
        ("fd00::1", "fd00:0:0:1::1", "more than one /64"),
        ("fd00::1", "fd00::1:0001", "at most 65536"),
    ],
)
def test_a_pool_must_be_ordered_small_and_in_one_64(first: str, last: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Address6Pool(IPv6Address(first), IPv6Address(last))


def test_the_never_used_walk_crosses_batches(db: Path) -> None:
    with open_store(db, pool(0, 599)) as store:
        for number in range(300):
            lease = store.bind(
                IaKey(b"\x00\x03\x00\x01" + bytes(4) + number.to_bytes(2), 1),
                None,
                None,
                LEASE,
                NOW,
            )
            assert lease is not None and lease.address == ip(number)


# --- property: never one address to two IAs ---------------------------------------------

MACHINE_POOL = pool(0x1000, 0x1004)


class Lease6Machine(RuleBasedStateMachine):
    """Random Solicit, Request, Renew, Release and Decline traffic from six IAs.

    `believed` is what each IA was last told; a Release or Decline the store
    accepted ends it. No two IAs may believe they hold one address, and the
    store must agree with every belief.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.store = Lease6Store(":memory:", MACHINE_POOL, offer_hold=30, quarantine=100)
        self.believed: dict[int, Lease6] = {}

    ias = st.integers(0, 5)
    addresses = st.integers(0x0FFF, 0x1005).map(ip)

    @rule(number=ias, hint=st.none() | addresses)
    def solicit(self, number: int, hint: IPv6Address | None) -> None:
        lease = self.store.offer(ia(number), mac(number), hint, self.now)
        if lease is not None:
            assert lease.active(self.now)
            self.believed[number] = lease

    @rule(number=ias, hint=st.none() | addresses, lease_time=st.sampled_from([10.0, 200.0]))
    def request(self, number: int, hint: IPv6Address | None, lease_time: float) -> None:
        lease = self.store.bind(ia(number), mac(number), hint, lease_time, self.now)
        if lease is not None:
            self.believed[number] = lease

    @rule(number=ias, address=addresses)
    def renew(self, number: int, address: IPv6Address) -> None:
        lease = self.store.extend(ia(number), address, 50.0, self.now)
        if lease is not None:
            self.believed[number] = lease

    @rule(number=ias, address=addresses)
    def release(self, number: int, address: IPv6Address) -> None:
        if self.store.release(ia(number), address, self.now):
            self.forget(number, address)

    @rule(number=ias, address=addresses)
    def decline(self, number: int, address: IPv6Address) -> None:
        if self.store.decline(ia(number), address, self.now):
            self.forget(number, address)

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0, 60.0, 150.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    def forget(self, number: int, address: IPv6Address) -> None:
        belief = self.believed.get(number)
        if belief is not None and belief.address == address:
            del self.believed[number]

    @invariant()
    def one_ia_per_address_and_one_address_per_ia(self) -> None:
        active = {n: lease for n, lease in self.believed.items() if lease.active(self.now)}
        held = [lease.address for lease in active.values()]
        assert len(held) == len(set(held)), active
        for number, lease in active.items():
            holder = self.store.holder(lease.address, self.now)
            assert holder is not None and holder.ia == ia(number), (lease, holder)
        rows = [lease for lease in self.store.leases() if lease.active(self.now)]
        assert len({lease.ia for lease in rows}) == len(rows), rows
        assert all(MACHINE_POOL.contains(lease.address) for lease in rows), rows

    def teardown(self) -> None:
        self.store.close()


TestLease6Machine = Lease6Machine.TestCase
TestLease6Machine.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
