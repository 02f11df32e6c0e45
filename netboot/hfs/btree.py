"""The B-tree files of HFS+ (extents overflow, catalog, attributes): nodes, search, iteration.

A B-tree file is an array of fixed-size nodes inside a fork (TN1150 "B-Trees").
The reader never loads it whole: it reads one node at a time through the
fork, keeps a few in a small LRU, and walks leaves by their forward links.
Nothing on disk is trusted: node numbers are checked against the node count
and the fork's size, record offsets against the node, the depth against a
hard limit, and a leaf chain that comes back to a node it visited is a loop
(guards after TN1150 and 7-Zip's HfsHandler checks).

Searching takes a comparison function instead of a key type, so the catalog
can look up "the first record of parent P" without any Unicode ordering.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from netboot.hfs.errors import HfsCorruptError
from netboot.hfs.fork import ForkReader

MAX_DEPTH = 16
CACHED_NODES = 16
_DESCRIPTOR = struct.Struct(">IIbBHH")
_HEADER = struct.Struct(">HIIIIHHII")
DESCRIPTOR_SIZE = _DESCRIPTOR.size
BIG_KEYS = 0x2
VARIABLE_INDEX_KEYS = 0x4

KeyCompare = Callable[[bytes], int]
"""Compares a record's key (the bytes after keyLength) with the one sought: <0, 0, >0."""


class NodeKind(IntEnum):
    LEAF = -1
    INDEX = 0
    HEADER = 1
    MAP = 2


@dataclass(frozen=True)
class Record:
    """One record of a leaf or index node: its key (without keyLength) and its data."""

    key: bytes
    data: bytes
    at: int
    """Volume offset of the record, for errors about its contents."""


@dataclass(frozen=True)
class Node:
    number: int
    forward: int
    kind: int
    height: int
    records: tuple[Record, ...]


@dataclass(frozen=True)
class TreeHeader:
    depth: int
    root: int
    leaf_records: int
    first_leaf: int
    last_leaf: int
    node_size: int
    max_key_length: int
    total_nodes: int
    compare_type: int
    attributes: int


class BTree:
    """One B-tree file, read through its fork."""

    def __init__(self, fork: ForkReader, name: str) -> None:
        self.fork = fork
        self.name = name
        self.image = fork.geometry.image
        self._cache: OrderedDict[int, Node] = OrderedDict()
        raw = fork.read(0, 512)
        if len(raw) < DESCRIPTOR_SIZE + _HEADER.size + 1 + 1 + 4 + 3:
            raise self._corrupt(0, "the header node is cut short")
        kind = _DESCRIPTOR.unpack_from(raw)[2]
        if kind != NodeKind.HEADER:
            raise self._corrupt(0, f"node 0 has kind {kind}, not 1 (header)")
        fields = _HEADER.unpack_from(raw, DESCRIPTOR_SIZE)
        depth, root, leaf_records, first_leaf, last_leaf, node_size, max_key, total, _ = fields
        compare_type = raw[DESCRIPTOR_SIZE + 37]
        attributes = struct.unpack_from(">I", raw, DESCRIPTOR_SIZE + 38)[0]
        if node_size < 512 or node_size > 32768 or node_size & (node_size - 1):
            raise self._corrupt(DESCRIPTOR_SIZE + 18, f"node size {node_size}")
        if total * node_size > fork.size:
            raise self._corrupt(
                DESCRIPTOR_SIZE + 22,
                f"{total} nodes of {node_size} bytes do not fit the {fork.size}-byte file",
            )
        if depth > MAX_DEPTH:
            raise self._corrupt(DESCRIPTOR_SIZE, f"tree depth {depth} is over {MAX_DEPTH}")
        if not attributes & BIG_KEYS:
            raise self._corrupt(DESCRIPTOR_SIZE + 38, "keys are not big keys (classic HFS?)")
        self.header = TreeHeader(
            depth,
            root,
            leaf_records,
            first_leaf,
            last_leaf,
            node_size,
            max_key,
            total,
            compare_type,
            attributes,
        )

    def _corrupt(self, fork_offset: int, message: str) -> HfsCorruptError:
        try:
            at: int | None = self.fork.volume_offset(fork_offset)
        except HfsCorruptError:
            at = None
        return HfsCorruptError(self.image, at, f"{self.name} B-tree: {message}")

    def node(self, number: int, referenced_at: int) -> Node:
        """Node `number`, checked; `referenced_at` is the fork offset of the pointer to it."""
        cached = self._cache.get(number)
        if cached is not None:
            self._cache.move_to_end(number)
            return cached
        header = self.header
        if number == 0 or number >= header.total_nodes:
            raise self._corrupt(
                referenced_at,
                f"node number {number} is past the tree's {header.total_nodes} nodes",
            )
        node = self._parse(number, self.fork.read(number * header.node_size, header.node_size))
        self._cache[number] = node
        if len(self._cache) > CACHED_NODES:
            self._cache.popitem(last=False)
        return node

    def _parse(self, number: int, raw: bytes) -> Node:
        size = self.header.node_size
        base = number * size
        if len(raw) != size:
            raise self._corrupt(base, f"node {number} is cut short by the end of the file")
        forward, _back, kind, height, count, _ = _DESCRIPTOR.unpack_from(raw)
        if kind not in (NodeKind.LEAF, NodeKind.INDEX):
            raise self._corrupt(base + 8, f"node {number} has kind {kind}, not leaf or index")
        if count == 0 or DESCRIPTOR_SIZE + 2 * (count + 1) > size:
            raise self._corrupt(base + 10, f"node {number} claims {count} records")
        offsets = struct.unpack_from(f">{count + 1}H", raw, size - 2 * (count + 1))[::-1]
        limit = size - 2 * (count + 1)
        previous = DESCRIPTOR_SIZE
        if offsets[0] != DESCRIPTOR_SIZE or offsets[-1] > limit:
            raise self._corrupt(base + size - 2, f"node {number}: record offsets out of the node")
        records = []
        variable = kind == NodeKind.LEAF or bool(self.header.attributes & VARIABLE_INDEX_KEYS)
        for index in range(count):
            start, end = offsets[index], offsets[index + 1]
            if start < previous or end <= start:
                raise self._corrupt(
                    base + size - 2 * (index + 2),
                    f"node {number}: record {index} offsets {start}..{end} do not increase",
                )
            previous = end
            if end - start < 2:
                raise self._corrupt(base + start, f"node {number}: record {index} has no key")
            key_length = struct.unpack_from(">H", raw, start)[0]
            if key_length > self.header.max_key_length or 2 + key_length > end - start:
                raise self._corrupt(
                    base + start, f"node {number}: record {index} key length {key_length}"
                )
            key_space = key_length if variable else self.header.max_key_length
            data_at = start + 2 + key_space + (key_space & 1)
            if data_at > end:
                raise self._corrupt(base + start, f"node {number}: record {index} has no data")
            at = self.fork.volume_offset(base + start)
            records.append(Record(raw[start + 2 : start + 2 + key_length], raw[data_at:end], at))
        return Node(number, forward, kind, height, tuple(records))

    def _child(self, record: Record, node: Node) -> int:
        if len(record.data) < 4:
            raise HfsCorruptError(
                self.image, record.at, f"{self.name} B-tree: index record has no child pointer"
            )
        return int(struct.unpack_from(">I", record.data)[0])

    def records_from(self, compare: KeyCompare) -> Iterator[Record]:
        """Leaf records in key order, from the first whose key is >= the one sought."""
        header = self.header
        if header.root == 0:
            return
        number, pointer = header.root, DESCRIPTOR_SIZE + 2
        expected_height = header.depth
        for _level in range(MAX_DEPTH + 1):
            node = self.node(number, pointer)
            if node.height != expected_height or node.height == 0:
                raise self._corrupt(
                    number * header.node_size + 9,
                    f"node {number} has height {node.height}, expected {expected_height}",
                )
            if node.kind == NodeKind.LEAF:
                break
            if node.height == 1:
                raise self._corrupt(
                    number * header.node_size + 8, f"index node {number} has height 1"
                )
            chosen = node.records[0]
            for record in node.records[1:]:
                if compare(record.key) > 0:
                    break
                chosen = record
            number, pointer = self._child(chosen, node), self._fork_offset(chosen.at)
            expected_height -= 1
        else:
            raise self._corrupt(0, f"deeper than {MAX_DEPTH} levels")
        yield from self._leaves_from(node, compare)

    def _fork_offset(self, volume_offset: int) -> int:
        # Error messages want fork offsets for _corrupt; records carry volume offsets.
        block_size = self.fork.geometry.block_size
        skipped = 0
        for extent in self.fork.extents:
            start = extent.start_block * block_size
            if start <= volume_offset < start + extent.block_count * block_size:
                return skipped + volume_offset - start
            skipped += extent.block_count * block_size
        return 0

    def _leaves_from(self, node: Node, compare: KeyCompare) -> Iterator[Record]:
        visited = {node.number}
        started = False
        while True:
            for record in node.records:
                if started or compare(record.key) >= 0:
                    started = True
                    yield record
            if node.forward == 0:
                return
            if node.forward in visited:
                raise self._corrupt(
                    node.number * self.header.node_size,
                    f"leaf node {node.number} links forward to node {node.forward}, "
                    "already visited: the leaf chain loops",
                )
            visited.add(node.forward)
            following = self.node(node.forward, node.number * self.header.node_size)
            if following.kind != NodeKind.LEAF:
                raise self._corrupt(
                    node.forward * self.header.node_size + 8,
                    f"node {node.forward}, linked from leaf {node.number}, is not a leaf",
                )
            node = following
