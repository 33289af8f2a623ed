"""Tests of the kvstore's behaviour and of its socket server, in process."""

import base64
import hashlib
import os
import socket
import tempfile
import threading
import unittest

import abci_proto as pb
import kvstore


def ed25519_tx(raw: bytes, power: int) -> bytes:
    return f"val=ed25519!{base64.b64encode(raw).decode()}!{power}".encode()


class TransactionsTest(unittest.TestCase):
    def test_app_hash_matches_go_put_varint(self):
        self.assertEqual(kvstore.app_hash(0), bytes(8))
        self.assertEqual(kvstore.app_hash(1), b"\x02" + bytes(7))
        self.assertEqual(kvstore.app_hash(2), b"\x04" + bytes(7))
        self.assertEqual(kvstore.app_hash(64), b"\x80\x01" + bytes(6))

    def test_tx_validity_follows_cometbft(self):
        for good in [b"a=b", b"a:b", b"key=some value"]:
            self.assertTrue(kvstore.is_valid_tx(good), good)
        for bad in [b"", b"abc", b"=b", b"a=", b":b", b"a:", b"a=b=c", b"a=b:c"]:
            self.assertFalse(kvstore.is_valid_tx(bad), bad)

    def test_parses_both_validator_tx_forms(self):
        key = base64.b64encode(bytes([7]) * 32).decode()
        for tx in [f"val={key}!10", f"val=ed25519!{key}!10", f"val=!{key}!+10"]:
            self.assertEqual(kvstore.parse_validator_tx(tx.encode()).power, 10, tx)
        secp = base64.b64encode(b"\x02" * 33).decode()
        update = kvstore.parse_validator_tx(f"val=secp256k1!{secp}!1".encode())
        self.assertEqual(update.pub_key.secp256k1, b"\x02" * 33)
        for bad in [
            f"val={key}!-1", f"val={key}!x", f"val={key}! 1", f"val={key}!1_0",
            "val=notbase64!1", f"val=rsa!{key}!1", "val=AAAA!1", f"val=a!b!{key}!1",
            f"val={key}!{2**63}",
        ]:
            with self.assertRaises(ValueError, msg=bad):
                kvstore.parse_validator_tx(bad.encode())


class AppTest(unittest.TestCase):
    def setUp(self):
        self.app = kvstore.KVStore()

    def query(self, key: bytes, path: str = "") -> pb.ResponseQuery:
        return self.app.query(pb.RequestQuery(data=key, path=path))

    def test_one_height(self):
        info = self.app.info(pb.RequestInfo())
        self.assertEqual((info.last_block_height, info.last_block_app_hash), (0, bytes(8)))
        self.assertEqual(info.version, "2.0.0")

        prepared = self.app.prepare_proposal(
            pb.RequestPrepareProposal(max_tx_bytes=1 << 20, txs=[b"a=1", b"b:2", b"malformed", b""])
        )
        self.assertEqual(prepared.txs, [b"a=1", b"b=2"])
        accept = self.app.process_proposal(pb.RequestProcessProposal(txs=prepared.txs))
        self.assertEqual(accept.status, pb.PROPOSAL_ACCEPT)
        reject = self.app.process_proposal(pb.RequestProcessProposal(txs=[b"nope"]))
        self.assertEqual(reject.status, pb.PROPOSAL_REJECT)

        finalized = self.app.finalize_block(pb.RequestFinalizeBlock(txs=prepared.txs, height=1))
        self.assertEqual([r.code for r in finalized.tx_results], [0, 0])
        events = finalized.tx_results[0].events
        self.assertEqual([e.type for e in events], ["app", "app"])
        self.assertEqual(events[0].attributes[1].value, "a")
        self.assertEqual(events[1].attributes[1].value, "1")
        self.assertFalse(events[0].attributes[3].index)
        self.assertEqual(finalized.app_hash, kvstore.app_hash(2))

        self.assertEqual(self.query(b"a").log, "does not exist")
        self.app.commit(pb.RequestCommit())
        found = self.query(b"a")
        self.assertEqual((found.code, found.value, found.log, found.height), (0, b"1", "exists", 1))
        self.assertEqual(self.app.query(pb.RequestQuery(data=b"a", prove=True)).index, -1)
        info = self.app.info(pb.RequestInfo())
        self.assertEqual(info.data, '{"size":2}')
        self.assertEqual(info.last_block_app_hash, kvstore.app_hash(2))

    def test_check_tx(self):
        ok = self.app.check_tx(pb.RequestCheckTx(tx=b"k=v"))
        self.assertEqual((ok.code, ok.gas_wanted), (0, 1))
        bad = self.app.check_tx(pb.RequestCheckTx(tx=b"kv"))
        self.assertEqual(bad.code, kvstore.CODE_TYPE_INVALID_TX_FORMAT)
        self.assertTrue(bad.log)

    def test_prepare_proposal_respects_max_tx_bytes(self):
        prepared = self.app.prepare_proposal(
            pb.RequestPrepareProposal(max_tx_bytes=7, txs=[b"a=1", b"b=2", b"c=3"])
        )
        self.assertEqual(prepared.txs, [b"a=1", b"b=2"])

    def test_odd_txs_in_a_block_store_themselves(self):
        finalized = self.app.finalize_block(pb.RequestFinalizeBlock(txs=[b"a=b=c"], height=1))
        self.assertEqual(finalized.tx_results[0].code, 0)
        self.app.commit(pb.RequestCommit())
        self.assertEqual(self.query(b"a=b=c").value, b"a=b=c")

    def test_validator_updates_and_misbehavior(self):
        raw = bytes([9]) * 32
        finalized = self.app.finalize_block(pb.RequestFinalizeBlock(txs=[ed25519_tx(raw, 5), b"val=bad"], height=1))
        self.assertEqual([r.code for r in finalized.tx_results], [0, 2])
        self.assertEqual([u.power for u in finalized.validator_updates], [5])
        self.app.commit(pb.RequestCommit())
        stored = self.query(raw, "/val").value
        self.assertEqual(stored, pb.frame(pb.ValidatorUpdate(pub_key=pb.PublicKey(ed25519=raw), power=5)))

        address = hashlib.sha256(raw).digest()[:20]
        misbehavior = pb.Misbehavior(
            type=pb.MISBEHAVIOR_DUPLICATE_VOTE, validator=pb.Validator(address=address, power=5)
        )
        finalized = self.app.finalize_block(pb.RequestFinalizeBlock(misbehavior=[misbehavior], height=2))
        self.assertEqual([u.power for u in finalized.validator_updates], [4])
        self.app.commit(pb.RequestCommit())
        self.assertEqual(self.query(b"", "/misbehavior").value, b"1")
        self.assertEqual(self.query(address, "/misbehavior").value, b"1")
        self.assertEqual(self.query(b"x" * 20, "/misbehavior").value, b"0")

        removed = self.app.finalize_block(pb.RequestFinalizeBlock(txs=[ed25519_tx(raw, 0)], height=3))
        self.assertEqual(removed.validator_updates[0].power, 0)
        self.app.commit(pb.RequestCommit())
        self.assertEqual(self.query(raw, "/val").value, b"")


class ServerTest(unittest.TestCase):
    """The real server on a real socket, driven with raw frames."""

    def start(self, addr):
        server, bound = kvstore.make_server(addr, kvstore.KVStore())
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()

        def stop():
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join()

        self.addCleanup(stop)
        return bound

    def connect(self, bound):
        if bound.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(bound[len("unix://"):])
        else:
            host, _, port = bound[len("tcp://"):].rpartition(":")
            sock = socket.create_connection((host, int(port)))
        sock.settimeout(10)
        self.addCleanup(sock.close)
        return sock, sock.makefile("rb")

    @staticmethod
    def send(sock, *requests):
        sock.sendall(b"".join(pb.frame(pb.Request(**r)) for r in requests))

    @staticmethod
    def receive(reader):
        return pb.Response.decode(pb.read_frame(reader))

    def test_answers_in_order_after_flush(self):
        sock, reader = self.connect(self.start("tcp://127.0.0.1:0"))
        requests = [
            {"check_tx": pb.RequestCheckTx(tx=b"k%d=v" % i if i % 2 == 0 else b"bad")}
            for i in range(100)
        ]
        self.send(sock, *requests, {"echo": pb.RequestEcho(message="last")}, {"flush": pb.RequestFlush()})
        for i in range(100):
            response = self.receive(reader)
            self.assertEqual(response.which(), "check_tx")
            self.assertEqual(response.check_tx.code == 0, i % 2 == 0, i)
        self.assertEqual(self.receive(reader).echo.message, "last")
        self.assertEqual(self.receive(reader).which(), "flush")

    def test_replies_wait_for_flush(self):
        sock, reader = self.connect(self.start("tcp://127.0.0.1:0"))
        self.send(sock, {"echo": pb.RequestEcho(message="held")})
        sock.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            sock.recv(1, socket.MSG_PEEK)
        sock.settimeout(10)
        self.send(sock, {"flush": pb.RequestFlush()})
        self.assertEqual(self.receive(reader).echo.message, "held")

    def test_unix_socket_and_concurrent_connections(self):
        with tempfile.TemporaryDirectory() as directory:
            bound = self.start(f"unix://{os.path.join(directory, 'app.sock')}")
            stalled, _ = self.connect(bound)
            stalled.sendall(b"\x09\x0a")  # half a frame: its thread waits
            sock, reader = self.connect(bound)
            self.send(sock, {"info": pb.RequestInfo()}, {"flush": pb.RequestFlush()})
            self.assertEqual(self.receive(reader).info.version, "2.0.0")

    def test_garbage_and_unknown_requests_close_only_their_connection(self):
        bound = self.start("tcp://127.0.0.1:0")
        good, good_reader = self.connect(bound)
        for bad in [b"\xff" * 11, b"\x05\xff\xff\xff\xff\xff", b"\x03\x0b\x00\x00"]:
            sock, reader = self.connect(bound)
            sock.sendall(bad)
            self.assertIsNone(pb.read_frame(reader), bad)  # closed, nothing said
        sock, reader = self.connect(bound)
        sock.sendall(b"\x02\x3a\x00")  # v0.34 BeginBlock
        refusal = self.receive(reader)
        self.assertIn("begin_block", refusal.exception.error)
        self.assertIsNone(pb.read_frame(reader))
        self.send(good, {"echo": pb.RequestEcho(message="still here")}, {"flush": pb.RequestFlush()})
        self.assertEqual(self.receive(good_reader).echo.message, "still here")

    def test_rejects_bad_addresses(self):
        for bad in ["http://h:1", "tcp://h", "tcp://:1", "unix://", "tcp://h:99999"]:
            with self.assertRaises(ValueError, msg=bad):
                kvstore.make_server(bad, kvstore.KVStore())


if __name__ == "__main__":
    unittest.main()
