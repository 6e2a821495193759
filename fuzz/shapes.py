"""Turn fuzz bytes into frames: raw, a valid message mutated, or a MessagePack map built field by field.

msgspec is C code that a Python fuzzer sees no coverage in, so random bytes
rarely get past its first check. Every input therefore starts with a mode byte:

    0      the rest of the input is the frame, as is
    1      a valid seed frame (seeds.py) with bytes overwritten, inserted or cut
    2, 3   a map built from a seed message's fields, then some fields set to
           values of any shape (wrong types, huge ints, nested containers,
           long strings, odd decimals), dropped, or added; encoded with msgpack

The same function drives atheris (coverage-guided bytes) and the in-suite
hypothesis run (``st.binary()``), so both explore the same space.
"""

from __future__ import annotations

import struct

import msgpack

# Values that sit on the edges of the spec: decimals the parser must refuse or
# accept exactly, enum words, and integers at every width msgpack can carry.
DECIMALS = (
    "0", "1", "-1", "0.01", "0.001", "0.005", "101.25", "100", "60000", "60000.5", "1e5",
    "1E-2", "NaN", "nan", "Infinity", "-0", "+1", " 1", "1 ", "1_000", "1.", ".5", "",
    "99999999999999999999999999", "0.0000000000000000000001", "10000", "10000.01", "1,5",
    "\u0663", "0x10", "100000", "100001", "0.25", "-0.01", "1" * 300,
)  # fmt: skip
WORDS = (
    "buy", "sell", "limit", "market", "gtc", "ioc", "fok", "cancel_newest", "cancel_oldest",
    "cancel_both", "none", "off", "block", "reduce_only", "orders", "positions", "reports",
    "book", "l2", "l3", "trades", "bbo", "XYZ", "ABC", "BTC-USD", "xyz", "md.XYZ", "alice",
    "bob", "ops", "maker", "taker", "new_order", "cancel", "replace", "logon", "logout",
    "heartbeat", "query", "recover", "kill_switch", "snapshot_request", "snapshot", "reject",
    "ack", "fill", "add", "change", "delete", "modify", "type", "v", "\x00", "é", "\ud7ff",
)  # fmt: skip
INTS = (
    0, 1, -1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**62 - 1,
    2**62, 2**63 - 1, 2**63, 2**64 - 1, -(2**31), -(2**63), 100_000, 100_001,
)  # fmt: skip


class Source:
    """Read small decisions from fuzz bytes; past the end every read is 0."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def pick(self, seq):  # type: ignore[no-untyped-def]
        return seq[self.byte() % len(seq)]

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def value(src: Source, names: tuple[str, ...], depth: int = 0) -> object:
    """Any value msgpack can carry, chosen by the next bytes."""
    kind = src.byte() % 16
    if kind == 0:
        return None
    if kind == 1:
        return bool(src.byte() & 1)
    if kind == 2:
        return src.byte() - 5
    if kind == 3:
        return src.pick(INTS)
    if kind == 4:
        raw = src.take(8).ljust(8, b"\0")
        return struct.unpack("<d", raw)[0]
    if kind == 5:
        return src.pick(DECIMALS)
    if kind == 6:  # a decimal made of digits, a point and a sign from the input
        chars = "0123456789.-+eE"
        return "".join(chars[b % len(chars)] for b in src.take(src.byte() % 24))
    if kind == 7:
        return src.pick(WORDS)
    if kind == 8:
        return src.pick(names)
    if kind == 9:  # long strings: cl_ord_id and symbol limits, and the frame size limit
        return src.pick(("a", "Z", "0", "é")) * src.pick((17, 32, 33, 64, 65, 200, 4000, 5000))
    if kind == 10:
        return src.take(src.byte() % 32).decode("latin-1")
    if kind == 11:
        return src.take(src.byte() % 32)  # bin
    if kind == 12 and depth < 4:
        return [value(src, names, depth + 1) for _ in range(src.byte() % 4)]
    if kind == 13 and depth < 4:
        return {key(src, names): value(src, names, depth + 1) for _ in range(src.byte() % 4)}
    if kind == 14:
        return msgpack.ExtType(src.byte() % 128, src.take(src.byte() % 8))
    if kind == 15:  # deep nesting: the decoder's recursion limit
        obj: object = src.byte()
        for _ in range(src.pick((10, 100, 500, 2000))):
            obj = [obj]
        return obj
    return src.byte() * 1000


def near(src: Source, names: tuple[str, ...]) -> object:
    """A value of a kind the fields take (decimal strings, words, ints), edge cases first."""
    kind = src.byte() % 4
    if kind == 0:
        return src.pick(DECIMALS)
    if kind == 1:
        return src.pick(WORDS)
    if kind == 2:
        return src.pick(INTS)
    return value(src, names)


def key(src: Source, names: tuple[str, ...]) -> object:
    """A map key: a field name, or something a map key should not be."""
    k = value(src, names, depth=4)  # no containers: a key must hash here
    return k if not isinstance(k, (list, dict)) else src.pick(names)


def build_map(src: Source, seeds: list[dict], names: tuple[str, ...]) -> bytes:
    """A seed message's map with 1..8 edits, encoded by msgpack (not by zex)."""
    doc: object = dict(src.pick(seeds))
    b = src.byte()
    for _ in range(1 if b < 160 else 1 + b % 8):  # mostly one edit: one thing wrong at a time
        op = src.byte() % 8
        if not isinstance(doc, dict):
            break
        if op <= 1 and doc:  # one of this message's fields, a value near its kind
            doc[src.pick(list(doc))] = near(src, names)
        elif op <= 3:  # any known field, any value
            doc[src.pick(names)] = value(src, names)
        elif op == 4 and doc:  # drop a field
            doc.pop(src.pick(list(doc)), None)
        elif op == 5:  # an unknown key, or a key that is not a string
            doc[key(src, names)] = value(src, names)
        elif op == 6:  # another message's type, or the version changed
            doc[src.pick(("type", "v"))] = value(src, names)
        else:  # the whole thing replaced: not a map at all
            doc = value(src, names)
    try:
        return msgpack.packb(doc, use_bin_type=True, strict_types=False)
    except (OverflowError, ValueError, TypeError):  # an unhashable key, a huge int, too deep
        # msgpack will not nest past 512; the decoders' limit is tried with raw arrays instead
        return b"\x82\xa4type\xa9new_order\xa6symbol" + b"\x91" * 5000 + b"\xc0"


def mutate(src: Source, frame: bytes) -> bytes:
    """A valid frame with a few bytes overwritten, inserted or cut."""
    buf = bytearray(frame)
    for _ in range(1 + src.byte() % 6):
        if not buf:
            break
        at = (src.byte() << 8 | src.byte()) % len(buf)
        op = src.byte() % 4
        if op == 0:
            buf[at] = src.byte()
        elif op == 1:
            buf.insert(at, src.byte())
        elif op == 2:
            del buf[at]
        else:
            del buf[at:]
    return bytes(buf)


def frame(data: bytes, seeds: list[bytes], maps: list[dict], names: tuple[str, ...]) -> bytes:
    """The frame one fuzz input stands for (module docstring)."""
    src = Source(data)
    mode = src.byte() % 4
    if mode == 0:
        return src.rest()
    if mode == 1:
        return mutate(src, src.pick(seeds))
    return build_map(src, maps, names)
