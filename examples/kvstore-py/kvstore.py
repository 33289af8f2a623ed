#!/usr/bin/env python3
"""CometBFT's kvstore example application, in Python, over the ABCI socket.

A CometBFT v0.38 (ABCI 2.0) application using only the standard library. It
behaves like the Rust kvstore of this repository (``examples/kvstore``), which
itself follows CometBFT's ``abci/example/kvstore``:

* ``key=value`` stores ``value`` under ``key``; ``key:value`` passes CheckTx
  and is rewritten to ``key=value`` by PrepareProposal. CheckTx rejects (code
  2) an empty tx, a tx with no separator or more than one, and one starting
  or ending with its separator. A tx reaching FinalizeBlock that does not
  split into exactly two parts on ``=`` is stored under itself.
* ``val=[keytype!]<base64 pubkey>!<power>`` updates a validator (``ed25519``,
  the default, or ``secp256k1``; power 0 removes it).
* The app hash is the number of transactions ever finalized, as Go's
  ``binary.PutVarint`` (zigzag varint) writes it into 8 zero-padded bytes.
* Query: by key (code 0, log ``exists`` or ``does not exist``), ``/val`` (a
  validator's length-delimited ``ValidatorUpdate``) and ``/misbehavior`` (how
  many misbehaviours were reported, in all or for one validator address).

Writes of a block become visible to queries at Commit. State is in memory.

Run it with::

    python3 kvstore.py --addr tcp://127.0.0.1:26658
    python3 kvstore.py --addr unix:///tmp/app.sock

The protocol side: each connection (CometBFT opens four) is served by its own
thread, requests in order; replies are buffered and written out when a
RequestFlush is answered. Bytes that are not ABCI v0.38 close only the
connection that sent them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import signal
import socket
import socketserver
import stat
import sys
import threading
import traceback
from typing import Callable

import abci_proto as pb

#: Success.
CODE_TYPE_OK = 0
#: CometBFT kvstore's code for a transaction it cannot parse.
CODE_TYPE_INVALID_TX_FORMAT = 2
#: The prefix of validator-update transactions.
VALIDATOR_PREFIX = b"val="
#: The application version reported by Info, as CometBFT's kvstore.
APP_VERSION = 1
#: The ABCI version reported by Info (CometBFT v0.38's ``ABCISemVer``).
ABCI_VERSION = "2.0.0"

_POWER = re.compile(r"[+-]?[0-9]+")


def log(message: str) -> None:
    """Writes one diagnostic line to stderr."""
    print(f"kvstore-py: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------


def app_hash(size: int) -> bytes:
    """The app hash after ``size`` finalized transactions.

    Go's ``binary.PutVarint(buf[:8], size)``: the zigzag varint of ``size``,
    zero-padded to 8 bytes (and cut to 8 past 2**55, where Go would panic).
    """
    zigzag = ((size << 1) ^ (size >> 63)) % (1 << 64)
    return pb.encode_varint(zigzag).ljust(8, b"\0")[:8]


def is_valid_tx(tx: bytes) -> bool:
    """Whether ``tx`` is ``key=value`` or ``key:value``: one separator, not at
    either end (CometBFT kvstore's ``isValidTx``)."""
    equals, colons = tx.count(b"="), tx.count(b":")
    if (equals, colons) == (1, 0):
        separator = b"="
    elif (equals, colons) == (0, 1):
        separator = b":"
    else:
        return False
    return not tx.startswith(separator) and not tx.endswith(separator)


def parse_validator_tx(tx: bytes) -> pb.ValidatorUpdate:
    """Parses ``val=[keytype!]<base64 pubkey>!<power>``.

    Raises ``ValueError`` saying what is wrong with the transaction.
    """
    if not tx.startswith(VALIDATOR_PREFIX):
        raise ValueError("a validator tx starts with 'val='")
    try:
        body = tx[len(VALIDATOR_PREFIX) :].decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError("a validator tx is UTF-8") from error
    parts = body.split("!")
    if len(parts) == 2:
        key_type, key, power_text = "ed25519", parts[0], parts[1]
    elif len(parts) == 3:
        key_type, key, power_text = parts
    else:
        # Quoted as the Rust kvstore quotes it, so that both logs agree.
        quoted = json.dumps(body, ensure_ascii=False)
        raise ValueError(f"expected 'keytype!pubkey!power', got {quoted}")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"pubkey ({key}) is invalid base64") from error
    if base64.b64encode(raw).decode("ascii") != key:
        # Non-canonical padding bits: refused, as Rust's base64 does.
        raise ValueError(f"pubkey ({key}) is invalid base64")
    if not _POWER.fullmatch(power_text) or not -(1 << 63) <= int(power_text) < 1 << 63:
        raise ValueError(f"power ({power_text}) is not an int")
    power = int(power_text)
    if power < 0:
        raise ValueError(f"power can not be less than 0, got {power}")
    if key_type in ("ed25519", "") and len(raw) == 32:
        pub_key = pb.PublicKey(ed25519=raw)
    elif key_type == "secp256k1" and len(raw) == 33:
        pub_key = pb.PublicKey(secp256k1=raw)
    elif key_type in ("ed25519", "", "secp256k1"):
        raise ValueError(f"a {key_type} public key of {len(raw)} bytes")
    else:
        raise ValueError(f"key type {key_type} not supported")
    return pb.ValidatorUpdate(pub_key=pub_key, power=power)


def check(tx: bytes) -> int:
    """CheckTx's verdict (a response code) on one transaction."""
    if tx.startswith(VALIDATOR_PREFIX):
        try:
            parse_validator_tx(tx)
        except ValueError:
            return CODE_TYPE_INVALID_TX_FORMAT
        return CODE_TYPE_OK
    return CODE_TYPE_OK if is_valid_tx(tx) else CODE_TYPE_INVALID_TX_FORMAT


def tx_events(key: str, value: str) -> list[pb.Event]:
    """CometBFT kvstore's two ``app`` events for a write of ``key``."""

    def event(creator: str, key: str) -> pb.Event:
        attribute = pb.EventAttribute
        return pb.Event(
            type="app",
            attributes=[
                attribute(key="creator", value=creator, index=True),
                attribute(key="key", value=key, index=True),
                attribute(key="index_key", value="index is working", index=True),
                attribute(key="noindex_key", value="index is working", index=False),
            ],
        )

    return [event("Cosmoshi Netowoko", key), event("Cosmoshi", value)]


def address(raw_key: bytes) -> bytes:
    """An ed25519 validator's address: the first 20 bytes of SHA-256(key)."""
    return hashlib.sha256(raw_key).digest()[:20]


def _raw_key(update: pb.ValidatorUpdate) -> tuple[bytes, bool] | None:
    """The raw key of an update and whether it is ed25519, if it has one."""
    key = update.pub_key
    if key is None:
        return None
    if key.ed25519 is not None:
        return key.ed25519, True
    if key.secp256k1 is not None:
        return key.secp256k1, False
    return None


# --------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------


class KVStore:
    """The kvstore's state and its ABCI methods.

    One instance serves every connection; all state is behind one lock.
    Each method takes the request message and returns the response message.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.height = 0  # last finalized height
        self.size = 0  # transactions finalized so far
        self.store: dict[bytes, bytes] = {}  # committed pairs
        self._staged: list[tuple[bytes, bytes]] = []  # the block's writes
        self._staged_validators: list[pb.ValidatorUpdate] = []
        self.validators: dict[bytes, pb.ValidatorUpdate] = {}  # by raw key
        self._addresses: dict[bytes, pb.PublicKey] = {}  # ed25519 only
        self.misbehavior: dict[bytes, int] = {}  # reports by address

    def _update_validator(self, update: pb.ValidatorUpdate) -> None:
        """Applies one validator update to the app's view of the set."""
        found = _raw_key(update)
        if found is None:
            log("ignoring a validator update without a public key")
            return
        raw, is_ed25519 = found
        if update.power == 0:
            if self.validators.pop(raw, None) is None:
                log("tried to remove a validator that does not exist; skipping")
            if is_ed25519:
                self._addresses.pop(address(raw), None)
        else:
            self.validators[raw] = update
            if is_ed25519:
                self._addresses[address(raw)] = update.pub_key

    def info(self, request: pb.RequestInfo) -> pb.ResponseInfo:
        with self._lock:
            return pb.ResponseInfo(
                data=f'{{"size":{self.size}}}',
                version=ABCI_VERSION,
                app_version=APP_VERSION,
                last_block_height=self.height,
                last_block_app_hash=app_hash(self.size),
            )

    def init_chain(self, request: pb.RequestInitChain) -> pb.ResponseInitChain:
        with self._lock:
            for validator in request.validators:
                self._update_validator(validator)
            return pb.ResponseInitChain(app_hash=app_hash(self.size))

    def check_tx(self, request: pb.RequestCheckTx) -> pb.ResponseCheckTx:
        code = check(request.tx)
        if code == CODE_TYPE_OK:
            return pb.ResponseCheckTx(code=CODE_TYPE_OK, gas_wanted=1)
        return pb.ResponseCheckTx(
            code=code, log="invalid tx format: expected key=value, key:value or val=..."
        )

    def prepare_proposal(self, request: pb.RequestPrepareProposal) -> pb.ResponsePrepareProposal:
        total = 0
        txs = []
        for tx in request.txs:
            if check(tx) != CODE_TYPE_OK:
                continue
            total += len(tx)
            if total > request.max_tx_bytes:
                break
            # `key:value` becomes `key=value` (a validator tx has no ':').
            txs.append(tx.replace(b":", b"=", 1))
        return pb.ResponsePrepareProposal(txs=txs)

    def process_proposal(self, request: pb.RequestProcessProposal) -> pb.ResponseProcessProposal:
        valid = all(check(tx) == CODE_TYPE_OK for tx in request.txs)
        return pb.ResponseProcessProposal(
            status=pb.PROPOSAL_ACCEPT if valid else pb.PROPOSAL_REJECT
        )

    def finalize_block(self, request: pb.RequestFinalizeBlock) -> pb.ResponseFinalizeBlock:
        with self._lock:
            self._staged = []
            self._staged_validators = []
            for misbehavior in request.misbehavior:
                self._record_misbehavior(misbehavior)
            results = [self._execute(tx) for tx in request.txs]
            self.height = request.height
            return pb.ResponseFinalizeBlock(
                tx_results=results,
                validator_updates=list(self._staged_validators),
                app_hash=app_hash(self.size),
            )

    def _record_misbehavior(self, misbehavior: pb.Misbehavior) -> None:
        """Counts a report; a known validator's duplicate vote costs it one
        unit of power, as in CometBFT's kvstore."""
        validator = misbehavior.validator
        if validator is None:
            return
        self.misbehavior[validator.address] = self.misbehavior.get(validator.address, 0) + 1
        if misbehavior.type != pb.MISBEHAVIOR_DUPLICATE_VOTE:
            return
        key = self._addresses.get(validator.address)
        if key is None:
            log(f"misbehaviour of an unknown validator {validator.address.hex()}")
            return
        log(f"decreasing the power of equivocating validator {validator.address.hex()} by 1")
        self._staged_validators.append(
            pb.ValidatorUpdate(pub_key=key, power=max(validator.power - 1, 0))
        )

    def _execute(self, tx: bytes) -> pb.ExecTxResult:
        """Executes one transaction of a finalized block (lock held)."""
        code, log_text = CODE_TYPE_OK, ""
        is_validator_tx = tx.startswith(VALIDATOR_PREFIX)
        if is_validator_tx:
            try:
                self._staged_validators.append(parse_validator_tx(tx))
            except ValueError as error:
                code, log_text = CODE_TYPE_INVALID_TX_FORMAT, str(error)
        parts = tx.split(b"=")
        key, value = (parts[0], parts[1]) if len(parts) == 2 else (tx, tx)
        if not is_validator_tx:
            self._staged.append((key, value))
        self.size += 1
        return pb.ExecTxResult(
            code=code,
            log=log_text,
            events=tx_events(key.decode("utf-8", "replace"), value.decode("utf-8", "replace")),
        )

    def commit(self, request: pb.RequestCommit) -> pb.ResponseCommit:
        with self._lock:
            for update in self._staged_validators:
                self._update_validator(update)
            for key, value in self._staged:
                self.store[key] = value
            self._staged, self._staged_validators = [], []
            return pb.ResponseCommit()

    def query(self, request: pb.RequestQuery) -> pb.ResponseQuery:
        with self._lock:
            if request.path == "/val":
                update = self.validators.get(request.data)
                return pb.ResponseQuery(
                    key=request.data,
                    value=pb.frame(update) if update is not None else b"",
                    height=self.height,
                )
            if request.path == "/misbehavior":
                if request.data:
                    count = self.misbehavior.get(request.data, 0)
                else:
                    count = sum(self.misbehavior.values())
                return pb.ResponseQuery(
                    key=request.data, value=str(count).encode(), height=self.height
                )
            value = self.store.get(request.data)
            return pb.ResponseQuery(
                code=CODE_TYPE_OK,
                log="exists" if value is not None else "does not exist",
                index=-1 if request.prove else 0,
                key=request.data,
                value=value or b"",
                height=self.height,
            )

    # CometBFT BaseApplication defaults for what the kvstore does not do.

    def list_snapshots(self, request: pb.RequestListSnapshots) -> pb.ResponseListSnapshots:
        return pb.ResponseListSnapshots()

    def offer_snapshot(self, request: pb.RequestOfferSnapshot) -> pb.ResponseOfferSnapshot:
        return pb.ResponseOfferSnapshot()

    def load_snapshot_chunk(
        self, request: pb.RequestLoadSnapshotChunk
    ) -> pb.ResponseLoadSnapshotChunk:
        return pb.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(
        self, request: pb.RequestApplySnapshotChunk
    ) -> pb.ResponseApplySnapshotChunk:
        return pb.ResponseApplySnapshotChunk()

    def extend_vote(self, request: pb.RequestExtendVote) -> pb.ResponseExtendVote:
        return pb.ResponseExtendVote()

    def verify_vote_extension(
        self, request: pb.RequestVerifyVoteExtension
    ) -> pb.ResponseVerifyVoteExtension:
        return pb.ResponseVerifyVoteExtension(status=pb.VERIFY_ACCEPT)


# --------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------


class Refusal(Exception):
    """A request the app answers with a ResponseException, then hangs up."""


def respond(app: KVStore, request: pb.Request) -> pb.Response:
    """The response to one decoded request.

    Raises :class:`Refusal` for a request of a kind ABCI v0.38 does not
    define (or an empty one).
    """
    kind = request.which()
    if kind is None:
        unknown = ", ".join(
            f"{n} ({pb.LEGACY_REQUEST_KINDS[n]} of ABCI before v0.38)"
            if n in pb.LEGACY_REQUEST_KINDS
            else str(n)
            for n in request.unknown_fields
        )
        raise Refusal(
            "unknown request: not an ABCI v0.38 request"
            + (f" (field {unknown})" if unknown else " (empty)")
        )
    body = getattr(request, kind)
    if kind == "echo":
        return pb.Response(echo=pb.ResponseEcho(message=body.message))
    if kind == "flush":
        return pb.Response(flush=pb.ResponseFlush())
    method: Callable[[pb.Message], pb.Message] = getattr(app, kind)
    return pb.Response(**{kind: method(body)})


def serve_connection(app: KVStore, sock: socket.socket, peer: str) -> None:
    """Serves one connection until the peer closes it or breaks the protocol.

    Replies are buffered and written out when a Flush is answered. Garbage
    is logged and closes this connection only; a request kind v0.38 does
    not know is answered with a ResponseException first, as CometBFT does.
    """
    reader = sock.makefile("rb")
    writer = sock.makefile("wb")
    try:
        while True:
            payload = pb.read_frame(reader)
            if payload is None:
                return
            request = pb.Request.decode(payload)
            try:
                response = respond(app, request)
            except Refusal as refusal:
                log(f"{peer}: {refusal}; closing the connection")
                writer.write(pb.frame(pb.Response(exception=pb.ResponseException(error=str(refusal)))))
                writer.flush()
                return
            writer.write(pb.frame(response))
            if request.flush is not None:
                writer.flush()
    except pb.DecodeError as error:
        log(f"{peer}: not ABCI v0.38 ({error}); closing the connection")
    except OSError as error:
        log(f"{peer}: connection error: {error}")
    except Exception as error:  # a bug in the app: report it and hang up
        log(f"{peer}: the application failed: {error!r}\n{traceback.format_exc()}")
        try:
            failure = pb.ResponseException(error=f"application error: {error!r}")
            writer.write(pb.frame(pb.Response(exception=failure)))
            writer.flush()
        except OSError as write_error:
            log(f"{peer}: could not report the failure: {write_error}")
    finally:
        for stream in (writer, reader):
            try:
                stream.close()
            except OSError as error:  # unflushed replies to a gone peer
                log(f"{peer}: closing: {error}")


class _Handler(socketserver.BaseRequestHandler):
    """Hands each accepted connection to :func:`serve_connection`."""

    server: "_Server"

    def handle(self) -> None:
        peer = str(self.client_address or "unix peer")
        self.server.track(self.request, add=True)
        try:
            serve_connection(self.server.app, self.request, peer)
        finally:
            self.server.track(self.request, add=False)


class _Server:
    """What both listener kinds share: the app and the open connections."""

    app: KVStore
    daemon_threads = True
    allow_reuse_address = True

    def _init_connections(self) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(sock)

    def close_connections(self) -> None:
        """Shuts every open connection down, so their threads finish."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer: nothing to shut down


class TCPServer(_Server, socketserver.ThreadingTCPServer):
    """A threaded TCP ABCI server."""

    def __init__(self, host_port: tuple[str, int], app: KVStore, family: int) -> None:
        self.address_family = family
        self.app = app
        self._init_connections()
        super().__init__(host_port, _Handler)


class UnixServer(_Server, socketserver.ThreadingUnixStreamServer):
    """A threaded Unix-socket ABCI server."""

    def __init__(self, path: str, app: KVStore) -> None:
        self.app = app
        self._init_connections()
        super().__init__(path, _Handler)


def _remove_stale_socket(path: str) -> None:
    """Removes a Unix socket file nobody listens on any more."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError as error:
        log(f"leaving {path} alone: {error}")
    finally:
        probe.close()


def make_server(addr: str, app: KVStore) -> tuple[_Server, str]:
    """Binds ``addr`` (``tcp://host:port``, ``unix:///path`` or ``host:port``)
    and returns the server with its bound address, in the same notation."""
    scheme, sep, rest = addr.partition("://")
    if not sep:
        scheme, rest = "tcp", addr
    if scheme == "unix":
        if not rest:
            raise ValueError(f"invalid address {addr!r}: the socket path is empty")
        _remove_stale_socket(rest)
        return UnixServer(rest, app), f"unix://{rest}"
    if scheme != "tcp":
        raise ValueError(f"invalid address {addr!r}: the scheme must be tcp:// or unix://")
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"invalid address {addr!r}: expected tcp://host:port")
    family = socket.AF_INET
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    server = TCPServer((host, int(port_text)), app, family)
    bound_host, bound_port = server.server_address[:2]
    if family == socket.AF_INET6:
        bound_host = f"[{bound_host}]"
    return server, f"tcp://{bound_host}:{bound_port}"


def main(argv: list[str] | None = None) -> int:
    """Runs the kvstore until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--addr",
        default="tcp://127.0.0.1:26658",
        help="where to listen: tcp://host:port or unix:///path (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        server, bound = make_server(args.addr, KVStore())
    except (ValueError, OSError) as error:
        log(f"cannot listen on {args.addr}: {error}")
        return 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log(f"received {signal.Signals(signum).name}, shutting down")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    accepter = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
    accepter.start()
    print(f"kvstore-py: listening on {bound}", flush=True)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.close_connections()
    server.server_close()
    if bound.startswith("unix://"):
        try:
            os.unlink(bound[len("unix://") :])
        except FileNotFoundError:
            pass  # someone else removed it: nothing to clean up
    return 0


if __name__ == "__main__":
    sys.exit(main())
