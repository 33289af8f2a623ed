"""A minimal protobuf wire codec and the ABCI v0.38 messages the kvstore uses.

Pure standard library: no generated code, no ``protobuf`` package. Messages
are declared as small classes listing their fields (number, name, kind), and
one generic encoder and decoder handle them all:

* varint (wire type 0), 64-bit (1), length-delimited (2) and 32-bit (5)
  fields are understood; groups (3, 4) are refused as malformed input;
* unknown fields of any of those wire types are skipped (their numbers are
  kept in ``unknown_fields``, which helps name a request of another ABCI
  version);
* proto3 semantics: scalars at their default value are not written, an
  absent message field is ``None``, and a present one is written even when
  empty (``Response{flush: {}}`` is ``1a 00``).

Only the fields the kvstore reads or writes are declared; everything else
in a request is skipped as unknown. Field numbers are those of CometBFT
v0.38's ``proto/tendermint/abci/types.proto`` and
``proto/tendermint/crypto/keys.proto``.

On the wire, every ABCI message is framed as an unsigned varint length
followed by that many bytes of protobuf (:func:`frame`, :func:`read_frame`).
"""

from __future__ import annotations

from typing import Any, BinaryIO, Iterator, NamedTuple

# Wire types.
WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5

# Field kinds.
STRING = "string"
BYTES = "bytes"
BOOL = "bool"
UINT32 = "uint32"
UINT64 = "uint64"
INT32 = "int32"
INT64 = "int64"
ENUM = "enum"  # encoded as int32
MESSAGE = "message"

_VARINT_KINDS = {BOOL, UINT32, UINT64, INT32, INT64, ENUM}
_LEN_KINDS = {STRING, BYTES, MESSAGE}

_U64 = 1 << 64
_MAX_FIELD_NUMBER = (1 << 29) - 1

#: Largest frame accepted by :func:`read_frame` by default (128 MiB, room
#: for CometBFT's largest block, 100 MiB, with its commit and evidence).
DEFAULT_MAX_FRAME_SIZE = 128 * 1024 * 1024

_READ_CHUNK = 64 * 1024


class DecodeError(ValueError):
    """The bytes are not a valid protobuf encoding of the expected message."""


# --------------------------------------------------------------------------
# Varints and raw fields
# --------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Encodes an unsigned integer below 2**64 as a LEB128 varint."""
    if not 0 <= value < _U64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """Decodes the varint at ``data[pos:]``; returns ``(value, next_pos)``.

    Raises :class:`DecodeError` if the data ends inside the varint or the
    varint is longer than 10 bytes or does not fit 64 bits.
    """
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= _U64:
                raise DecodeError("varint does not fit in 64 bits")
            return value, pos
    raise DecodeError("varint longer than 10 bytes")


def _key(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def iter_fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yields ``(field_number, wire_type, value)`` for each field of ``data``.

    ``value`` is an ``int`` for varints, ``bytes`` for the other wire types
    (length-delimited payloads and the raw 8 or 4 little-endian bytes of
    fixed-width fields).
    """
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = decode_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if not 1 <= number <= _MAX_FIELD_NUMBER:
            raise DecodeError(f"invalid field number {number}")
        if wire_type == WIRE_VARINT:
            value, pos = decode_varint(data, pos)
        elif wire_type == WIRE_LEN:
            length, pos = decode_varint(data, pos)
            if length > end - pos:
                raise DecodeError(f"field {number}: length {length} runs past the end")
            value = bytes(data[pos : pos + length])
            pos += length
        elif wire_type in (WIRE_FIXED64, WIRE_FIXED32):
            size = 8 if wire_type == WIRE_FIXED64 else 4
            if size > end - pos:
                raise DecodeError(f"field {number}: truncated fixed-width value")
            value = bytes(data[pos : pos + size])
            pos += size
        else:
            raise DecodeError(f"field {number}: unsupported wire type {wire_type}")
        yield number, wire_type, value


# --------------------------------------------------------------------------
# Declarative messages
# --------------------------------------------------------------------------



class Field(NamedTuple):
    """One declared field of a :class:`Message`.

    ``oneof`` marks a member of the message's (single) oneof: it is ``None``
    when absent, written whenever set (even to an empty value), and setting
    it by decoding clears the other members.
    """

    number: int
    name: str
    kind: str
    message: Any = None  # the Message subclass, for MESSAGE fields
    repeated: bool = False
    oneof: bool = False


def _default(field: Field) -> Any:
    """The proto3 default of ``field`` (``None`` for absent messages)."""
    if field.repeated:
        return []
    if field.kind == MESSAGE or field.oneof:
        return None
    if field.kind == STRING:
        return ""
    if field.kind == BYTES:
        return b""
    if field.kind == BOOL:
        return False
    return 0


def _encode_value(field: Field, value: Any) -> bytes:
    """The payload (after the key) of one value of ``field``."""
    kind = field.kind
    if kind == STRING:
        raw = value.encode("utf-8")
        return encode_varint(len(raw)) + raw
    if kind == BYTES:
        raw = bytes(value)
        return encode_varint(len(raw)) + raw
    if kind == MESSAGE:
        raw = value.encode()
        return encode_varint(len(raw)) + raw
    if kind == BOOL:
        return encode_varint(1 if value else 0)
    value = int(value)
    if kind == UINT64:
        low, high = 0, _U64 - 1
    elif kind == UINT32:
        low, high = 0, (1 << 32) - 1
    elif kind == INT64:
        low, high = -(1 << 63), (1 << 63) - 1
    else:  # INT32, ENUM: negative values are sign-extended to 64 bits
        low, high = -(1 << 31), (1 << 31) - 1
    if not low <= value <= high:
        raise ValueError(f"{field.name}: {value} does not fit {kind}")
    return encode_varint(value % _U64)


def _decode_value(field: Field, wire_type: int, value: Any) -> Any:
    """Converts one raw field value to the Python value of ``field``."""
    kind = field.kind
    expected = WIRE_VARINT if kind in _VARINT_KINDS else WIRE_LEN
    if wire_type != expected:
        raise DecodeError(
            f"field {field.number} ({field.name}): wire type {wire_type}, expected {expected}"
        )
    if kind == STRING:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError(f"field {field.number} ({field.name}): invalid UTF-8") from error
    if kind == BYTES:
        return value
    if kind == MESSAGE:
        return field.message.decode(value)
    if kind == BOOL:
        return value != 0
    if kind == UINT64:
        return value
    if kind == UINT32:
        return value & 0xFFFFFFFF
    if kind == INT64:
        return value - _U64 if value >= 1 << 63 else value
    # INT32, ENUM: the low 32 bits, signed.
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class Message:
    """Base of the declared messages.

    Subclasses set ``FIELDS``; instances get one attribute per field, set
    from keyword arguments or to the proto3 default. Instances compare equal
    when all their declared fields are equal.
    """

    FIELDS: tuple[Field, ...] = ()
    _by_number: dict[int, Field] = {}
    _by_name: dict[str, Field] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_number = {f.number: f for f in cls.FIELDS}
        cls._by_name = {f.name: f for f in cls.FIELDS}

    def __init__(self, **values: Any) -> None:
        for field in self.FIELDS:
            setattr(self, field.name, _default(field))
        for name, value in values.items():
            if name not in self._by_name:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, value)
        #: Numbers of the fields skipped while decoding, in order.
        self.unknown_fields: list[int] = []

    def encode(self) -> bytes:
        """The protobuf encoding of this message."""
        out = bytearray()
        for field in self.FIELDS:
            value = getattr(self, field.name)
            wire_type = WIRE_LEN if field.kind in _LEN_KINDS else WIRE_VARINT
            if field.repeated:
                for item in value:
                    out += _key(field.number, wire_type) + _encode_value(field, item)
                continue
            if value is None:
                continue
            if not field.oneof and field.kind != MESSAGE and value == _default(field):
                continue
            out += _key(field.number, wire_type) + _encode_value(field, value)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> "Message":
        """Decodes ``data``; unknown fields are skipped.

        Raises :class:`DecodeError` on malformed input or a known field of the
        wrong wire type.
        """
        message = cls()
        for number, wire_type, raw in iter_fields(data):
            field = cls._by_number.get(number)
            if field is None:
                message.unknown_fields.append(number)
                continue
            value = _decode_value(field, wire_type, raw)
            if field.repeated:
                getattr(message, field.name).append(value)
                continue
            if field.oneof:
                for other in cls.FIELDS:
                    if other.oneof:
                        setattr(message, other.name, None)
            setattr(message, field.name, value)
        return message

    def which(self) -> str | None:
        """The name of the oneof member that is set, if any."""
        for field in self.FIELDS:
            if field.oneof and getattr(self, field.name) is not None:
                return field.name
        return None

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self.FIELDS)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in self.FIELDS
            if getattr(self, f.name) != _default(f)
        )
        return f"{type(self).__name__}({shown})"


def _oneof_of_messages(*members: tuple[int, str, type[Message]]) -> tuple[Field, ...]:
    """The fields of a message that is one oneof of submessages."""
    return tuple(Field(n, name, MESSAGE, message, oneof=True) for n, name, message in members)


# --------------------------------------------------------------------------
# tendermint.crypto (keys.proto)
# --------------------------------------------------------------------------


class PublicKey(Message):
    """A validator's public key: exactly one of the raw key fields is set."""

    FIELDS = (
        Field(1, "ed25519", BYTES, oneof=True),
        Field(2, "secp256k1", BYTES, oneof=True),
    )


# --------------------------------------------------------------------------
# tendermint.abci (types.proto): shared messages
# --------------------------------------------------------------------------


class ValidatorUpdate(Message):
    FIELDS = (Field(1, "pub_key", MESSAGE, PublicKey), Field(2, "power", INT64))


class Validator(Message):
    FIELDS = (Field(1, "address", BYTES), Field(3, "power", INT64))


class Misbehavior(Message):
    # time (4) and total_voting_power (5) are not used.
    FIELDS = (
        Field(1, "type", ENUM),
        Field(2, "validator", MESSAGE, Validator),
        Field(3, "height", INT64),
    )


MISBEHAVIOR_UNKNOWN = 0
MISBEHAVIOR_DUPLICATE_VOTE = 1
MISBEHAVIOR_LIGHT_CLIENT_ATTACK = 2


class EventAttribute(Message):
    FIELDS = (Field(1, "key", STRING), Field(2, "value", STRING), Field(3, "index", BOOL))


class Event(Message):
    FIELDS = (
        Field(1, "type", STRING),
        Field(2, "attributes", MESSAGE, EventAttribute, repeated=True),
    )


class ExecTxResult(Message):
    FIELDS = (
        Field(1, "code", UINT32),
        Field(2, "data", BYTES),
        Field(3, "log", STRING),
        Field(4, "info", STRING),
        Field(5, "gas_wanted", INT64),
        Field(6, "gas_used", INT64),
        Field(7, "events", MESSAGE, Event, repeated=True),
        Field(8, "codespace", STRING),
    )


# --------------------------------------------------------------------------
# Requests (only the fields the kvstore reads)
# --------------------------------------------------------------------------


class RequestEcho(Message):
    FIELDS = (Field(1, "message", STRING),)


class RequestFlush(Message):
    FIELDS = ()


class RequestInfo(Message):
    FIELDS = (
        Field(1, "version", STRING),
        Field(2, "block_version", UINT64),
        Field(3, "p2p_version", UINT64),
        Field(4, "abci_version", STRING),
    )


class RequestInitChain(Message):
    # time (1) and consensus_params (3) are not used.
    FIELDS = (
        Field(2, "chain_id", STRING),
        Field(4, "validators", MESSAGE, ValidatorUpdate, repeated=True),
        Field(5, "app_state_bytes", BYTES),
        Field(6, "initial_height", INT64),
    )


class RequestQuery(Message):
    FIELDS = (
        Field(1, "data", BYTES),
        Field(2, "path", STRING),
        Field(3, "height", INT64),
        Field(4, "prove", BOOL),
    )


CHECK_TX_NEW = 0
CHECK_TX_RECHECK = 1


class RequestCheckTx(Message):
    FIELDS = (Field(1, "tx", BYTES), Field(2, "type", ENUM))


class RequestCommit(Message):
    FIELDS = ()


class RequestListSnapshots(Message):
    FIELDS = ()


class RequestOfferSnapshot(Message):
    FIELDS = ()  # snapshot (1), app_hash (2): not used


class RequestLoadSnapshotChunk(Message):
    FIELDS = (Field(1, "height", UINT64), Field(2, "format", UINT32), Field(3, "chunk", UINT32))


class RequestApplySnapshotChunk(Message):
    FIELDS = (Field(1, "index", UINT32), Field(2, "chunk", BYTES), Field(3, "sender", STRING))


class RequestPrepareProposal(Message):
    # local_last_commit (3), misbehavior (4), time (6), next_validators_hash
    # (7) and proposer_address (8) are not used.
    FIELDS = (
        Field(1, "max_tx_bytes", INT64),
        Field(2, "txs", BYTES, repeated=True),
        Field(5, "height", INT64),
    )


class RequestProcessProposal(Message):
    FIELDS = (
        Field(1, "txs", BYTES, repeated=True),
        Field(3, "misbehavior", MESSAGE, Misbehavior, repeated=True),
        Field(4, "hash", BYTES),
        Field(5, "height", INT64),
    )


class RequestExtendVote(Message):
    FIELDS = (Field(1, "hash", BYTES), Field(2, "height", INT64))


class RequestVerifyVoteExtension(Message):
    FIELDS = (
        Field(1, "hash", BYTES),
        Field(2, "validator_address", BYTES),
        Field(3, "height", INT64),
        Field(4, "vote_extension", BYTES),
    )


class RequestFinalizeBlock(Message):
    # decided_last_commit (2), time (6), next_validators_hash (7) and
    # proposer_address (8) are not used.
    FIELDS = (
        Field(1, "txs", BYTES, repeated=True),
        Field(3, "misbehavior", MESSAGE, Misbehavior, repeated=True),
        Field(4, "hash", BYTES),
        Field(5, "height", INT64),
    )


class Request(Message):
    """``tendermint.abci.Request``: one of the request kinds."""

    FIELDS = _oneof_of_messages(
        (1, "echo", RequestEcho),
        (2, "flush", RequestFlush),
        (3, "info", RequestInfo),
        (5, "init_chain", RequestInitChain),
        (6, "query", RequestQuery),
        (8, "check_tx", RequestCheckTx),
        (11, "commit", RequestCommit),
        (12, "list_snapshots", RequestListSnapshots),
        (13, "offer_snapshot", RequestOfferSnapshot),
        (14, "load_snapshot_chunk", RequestLoadSnapshotChunk),
        (15, "apply_snapshot_chunk", RequestApplySnapshotChunk),
        (16, "prepare_proposal", RequestPrepareProposal),
        (17, "process_proposal", RequestProcessProposal),
        (18, "extend_vote", RequestExtendVote),
        (19, "verify_vote_extension", RequestVerifyVoteExtension),
        (20, "finalize_block", RequestFinalizeBlock),
    )


#: Request field numbers of ABCI v0.34/v0.37 that v0.38 dropped, to name
#: them in the refusal of such a request.
LEGACY_REQUEST_KINDS = {4: "set_option", 7: "begin_block", 9: "deliver_tx", 10: "end_block"}


# --------------------------------------------------------------------------
# Responses (only the fields the kvstore writes)
# --------------------------------------------------------------------------


class ResponseException(Message):
    FIELDS = (Field(1, "error", STRING),)


class ResponseEcho(Message):
    FIELDS = (Field(1, "message", STRING),)


class ResponseFlush(Message):
    FIELDS = ()


class ResponseInfo(Message):
    FIELDS = (
        Field(1, "data", STRING),
        Field(2, "version", STRING),
        Field(3, "app_version", UINT64),
        Field(4, "last_block_height", INT64),
        Field(5, "last_block_app_hash", BYTES),
    )


class ResponseInitChain(Message):
    # consensus_params (1) is never set.
    FIELDS = (
        Field(2, "validators", MESSAGE, ValidatorUpdate, repeated=True),
        Field(3, "app_hash", BYTES),
    )


class ResponseQuery(Message):
    # proof_ops (8) is never set.
    FIELDS = (
        Field(1, "code", UINT32),
        Field(3, "log", STRING),
        Field(4, "info", STRING),
        Field(5, "index", INT64),
        Field(6, "key", BYTES),
        Field(7, "value", BYTES),
        Field(9, "height", INT64),
        Field(10, "codespace", STRING),
    )


class ResponseCheckTx(Message):
    FIELDS = (
        Field(1, "code", UINT32),
        Field(2, "data", BYTES),
        Field(3, "log", STRING),
        Field(4, "info", STRING),
        Field(5, "gas_wanted", INT64),
        Field(6, "gas_used", INT64),
        Field(7, "events", MESSAGE, Event, repeated=True),
        Field(8, "codespace", STRING),
    )


class ResponseCommit(Message):
    FIELDS = (Field(3, "retain_height", INT64),)


class ResponseListSnapshots(Message):
    FIELDS = ()  # snapshots (1): this app has none


class ResponseOfferSnapshot(Message):
    FIELDS = (Field(1, "result", ENUM),)


class ResponseLoadSnapshotChunk(Message):
    FIELDS = (Field(1, "chunk", BYTES),)


class ResponseApplySnapshotChunk(Message):
    FIELDS = (Field(1, "result", ENUM),)


class ResponsePrepareProposal(Message):
    FIELDS = (Field(1, "txs", BYTES, repeated=True),)


PROPOSAL_UNKNOWN = 0
PROPOSAL_ACCEPT = 1
PROPOSAL_REJECT = 2


class ResponseProcessProposal(Message):
    FIELDS = (Field(1, "status", ENUM),)


class ResponseExtendVote(Message):
    FIELDS = (Field(1, "vote_extension", BYTES),)


VERIFY_UNKNOWN = 0
VERIFY_ACCEPT = 1
VERIFY_REJECT = 2


class ResponseVerifyVoteExtension(Message):
    FIELDS = (Field(1, "status", ENUM),)


class ResponseFinalizeBlock(Message):
    # consensus_param_updates (4) is never set.
    FIELDS = (
        Field(1, "events", MESSAGE, Event, repeated=True),
        Field(2, "tx_results", MESSAGE, ExecTxResult, repeated=True),
        Field(3, "validator_updates", MESSAGE, ValidatorUpdate, repeated=True),
        Field(5, "app_hash", BYTES),
    )


class Response(Message):
    """``tendermint.abci.Response``: one of the response kinds."""

    FIELDS = _oneof_of_messages(
        (1, "exception", ResponseException),
        (2, "echo", ResponseEcho),
        (3, "flush", ResponseFlush),
        (4, "info", ResponseInfo),
        (6, "init_chain", ResponseInitChain),
        (7, "query", ResponseQuery),
        (9, "check_tx", ResponseCheckTx),
        (12, "commit", ResponseCommit),
        (13, "list_snapshots", ResponseListSnapshots),
        (14, "offer_snapshot", ResponseOfferSnapshot),
        (15, "load_snapshot_chunk", ResponseLoadSnapshotChunk),
        (16, "apply_snapshot_chunk", ResponseApplySnapshotChunk),
        (17, "prepare_proposal", ResponsePrepareProposal),
        (18, "process_proposal", ResponseProcessProposal),
        (19, "extend_vote", ResponseExtendVote),
        (20, "verify_vote_extension", ResponseVerifyVoteExtension),
        (21, "finalize_block", ResponseFinalizeBlock),
    )


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------


class FrameError(DecodeError):
    """The stream does not carry well-formed ABCI frames."""


def frame(message: Message | bytes) -> bytes:
    """``message`` (or its encoding) behind its unsigned varint length."""
    raw = message.encode() if isinstance(message, Message) else bytes(message)
    return encode_varint(len(raw)) + raw


def read_frame(stream: BinaryIO, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes | None:
    """Reads one frame's payload from a binary stream.

    Returns ``None`` when the stream ends cleanly before a frame starts.
    Raises :class:`FrameError` on a malformed or oversized length prefix or
    a stream ending inside a frame. The payload buffer grows only as bytes
    arrive, so a peer announcing a huge frame cannot make it allocate more
    than it sends.
    """
    length = 0
    for index in range(10):
        byte = stream.read(1)
        if not byte:
            if index == 0:
                return None
            raise FrameError("the stream ended inside a frame length")
        length |= (byte[0] & 0x7F) << (7 * index)
        if not byte[0] & 0x80:
            break
    else:
        raise FrameError("malformed frame length (varint longer than 10 bytes): not ABCI framing")
    if length > max_size:
        raise FrameError(f"frame of {length} bytes announced, above the maximum of {max_size}")
    payload = bytearray()
    while len(payload) < length:
        chunk = stream.read(min(_READ_CHUNK, length - len(payload)))
        if not chunk:
            raise FrameError(f"the stream ended inside a frame ({len(payload)} of {length} bytes)")
        payload += chunk
    return bytes(payload)
