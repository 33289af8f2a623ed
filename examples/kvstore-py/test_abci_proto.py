"""Tests of the protobuf wire codec and the ABCI message declarations."""

import io
import unittest

import abci_proto as pb


class VarintTest(unittest.TestCase):
    def test_round_trips_edge_values(self):
        for value in [0, 1, 127, 128, 300, 2**32 - 1, 2**63, 2**64 - 1]:
            encoded = pb.encode_varint(value)
            self.assertEqual(pb.decode_varint(encoded), (value, len(encoded)), value)
        self.assertEqual(pb.encode_varint(300), bytes([0xAC, 0x02]))
        self.assertEqual(len(pb.encode_varint(2**64 - 1)), 10)

    def test_refuses_out_of_range(self):
        for value in [-1, 2**64]:
            with self.assertRaises(ValueError):
                pb.encode_varint(value)
        with self.assertRaises(pb.DecodeError):
            pb.decode_varint(b"\xff" * 11)
        with self.assertRaises(pb.DecodeError):
            pb.decode_varint(b"\xff" * 9 + b"\x02")  # 2**64: one bit too many
        with self.assertRaises(pb.DecodeError):
            pb.decode_varint(b"\x80\x80")  # truncated


class GoldenBytesTest(unittest.TestCase):
    def test_echo_request_frame(self):
        request = pb.Request(echo=pb.RequestEcho(message="hello"))
        golden = bytes.fromhex("09 0a 07 0a 05 68 65 6c 6c 6f")
        self.assertEqual(pb.frame(request), golden)
        decoded = pb.Request.decode(golden[1:])
        self.assertEqual(decoded.which(), "echo")
        self.assertEqual(decoded.echo.message, "hello")

    def test_flush_response_frame(self):
        golden = bytes.fromhex("02 1a 00")
        self.assertEqual(pb.frame(pb.Response(flush=pb.ResponseFlush())), golden)
        self.assertEqual(pb.Response.decode(golden[1:]).which(), "flush")

    def test_negative_int64_is_ten_bytes(self):
        # ResponseQuery{index: -1}: key 0x28, then -1 as a 10-byte varint.
        encoded = pb.ResponseQuery(index=-1).encode()
        self.assertEqual(encoded, bytes.fromhex("28 ff ff ff ff ff ff ff ff ff 01"))
        self.assertEqual(pb.ResponseQuery.decode(encoded).index, -1)

    def test_defaults_are_not_written(self):
        self.assertEqual(pb.ResponseCheckTx().encode(), b"")
        self.assertEqual(pb.ResponseCheckTx(code=2).encode(), b"\x08\x02")
        # A oneof member is written even at its default.
        self.assertEqual(pb.PublicKey(ed25519=b"").encode(), b"\x0a\x00")


class RoundTripTest(unittest.TestCase):
    def test_every_request_kind(self):
        misbehavior = pb.Misbehavior(
            type=pb.MISBEHAVIOR_DUPLICATE_VOTE,
            validator=pb.Validator(address=b"\x01" * 20, power=5),
            height=3,
        )
        update = pb.ValidatorUpdate(pub_key=pb.PublicKey(ed25519=b"\x07" * 32), power=10)
        requests = [
            pb.Request(echo=pb.RequestEcho(message="hi")),
            pb.Request(flush=pb.RequestFlush()),
            pb.Request(info=pb.RequestInfo(version="0.38.0", block_version=11, abci_version="2.0.0")),
            pb.Request(init_chain=pb.RequestInitChain(chain_id="c", validators=[update], initial_height=1)),
            pb.Request(query=pb.RequestQuery(data=b"k", path="/store", height=-1, prove=True)),
            pb.Request(check_tx=pb.RequestCheckTx(tx=b"a=b", type=pb.CHECK_TX_RECHECK)),
            pb.Request(commit=pb.RequestCommit()),
            pb.Request(list_snapshots=pb.RequestListSnapshots()),
            pb.Request(offer_snapshot=pb.RequestOfferSnapshot()),
            pb.Request(load_snapshot_chunk=pb.RequestLoadSnapshotChunk(height=1, format=2, chunk=3)),
            pb.Request(apply_snapshot_chunk=pb.RequestApplySnapshotChunk(index=1, chunk=b"x", sender="p")),
            pb.Request(prepare_proposal=pb.RequestPrepareProposal(max_tx_bytes=100, txs=[b"a", b""], height=2)),
            pb.Request(process_proposal=pb.RequestProcessProposal(txs=[b"a"], misbehavior=[misbehavior], height=2)),
            pb.Request(extend_vote=pb.RequestExtendVote(hash=b"h", height=2)),
            pb.Request(verify_vote_extension=pb.RequestVerifyVoteExtension(vote_extension=b"v", height=2)),
            pb.Request(finalize_block=pb.RequestFinalizeBlock(txs=[b"a=1", b"b=2"], misbehavior=[misbehavior], height=2)),
        ]
        self.assertEqual(len(requests), len(pb.Request.FIELDS))
        for request in requests:
            self.assertEqual(pb.Request.decode(request.encode()), request, request)

    def test_responses(self):
        event = pb.Event(type="app", attributes=[pb.EventAttribute(key="k", value="v", index=True)])
        responses = [
            pb.Response(exception=pb.ResponseException(error="boom")),
            pb.Response(info=pb.ResponseInfo(data="{}", version="2.0.0", app_version=1, last_block_height=7, last_block_app_hash=b"\x02" + bytes(7))),
            pb.Response(query=pb.ResponseQuery(code=0, log="exists", index=-1, key=b"k", value=b"v", height=3)),
            pb.Response(check_tx=pb.ResponseCheckTx(code=0, gas_wanted=1, events=[event])),
            pb.Response(commit=pb.ResponseCommit(retain_height=5)),
            pb.Response(process_proposal=pb.ResponseProcessProposal(status=pb.PROPOSAL_REJECT)),
            pb.Response(finalize_block=pb.ResponseFinalizeBlock(
                tx_results=[pb.ExecTxResult(code=2, log="bad", events=[event]), pb.ExecTxResult()],
                validator_updates=[pb.ValidatorUpdate(pub_key=pb.PublicKey(secp256k1=b"\x02" * 33), power=0)],
                app_hash=b"\x04" + bytes(7),
            )),
        ]
        for response in responses:
            self.assertEqual(pb.Response.decode(response.encode()), response, response)


class DecodingTest(unittest.TestCase):
    def test_unknown_fields_of_every_wire_type_are_skipped(self):
        def key(number, wire_type):
            return pb.encode_varint(number << 3 | wire_type)

        known = pb.RequestCheckTx(tx=b"a=b").encode()
        unknown = (
            key(50, 0) + pb.encode_varint(2**63)  # varint
            + key(51, 1) + bytes(8)  # fixed64
            + key(52, 2) + b"\x03xyz"  # length-delimited
            + key(53, 5) + bytes(4)  # fixed32
        )
        decoded = pb.RequestCheckTx.decode(unknown + known + unknown)
        self.assertEqual(decoded.tx, b"a=b")
        self.assertEqual(decoded.unknown_fields, [50, 51, 52, 53] * 2)

    def test_unknown_request_kind_decodes_to_nothing(self):
        # v0.34's BeginBlock (field 7) is not a v0.38 request.
        request = pb.Request.decode(bytes([0x3A, 0x00]))
        self.assertIsNone(request.which())
        self.assertEqual(request.unknown_fields, [7])

    def test_the_last_oneof_member_wins(self):
        both = pb.Request(echo=pb.RequestEcho(message="a")).encode() + pb.Request(commit=pb.RequestCommit()).encode()
        request = pb.Request.decode(both)
        self.assertEqual(request.which(), "commit")
        self.assertIsNone(request.echo)

    def test_repeated_fields_accumulate(self):
        data = pb.RequestFinalizeBlock(txs=[b"a=1"]).encode() + pb.RequestFinalizeBlock(txs=[b"b=2"], height=4).encode()
        decoded = pb.RequestFinalizeBlock.decode(data)
        self.assertEqual((decoded.txs, decoded.height), ([b"a=1", b"b=2"], 4))

    def test_garbage_is_a_decode_error(self):
        for garbage in [
            b"\xff" * 5,  # a key that is an overlong varint
            b"\x0a\x05ab",  # length past the end
            b"\x0b",  # group start (wire type 3)
            b"\x00\x01",  # field number 0
            b"\x09\x01",  # fixed64 truncated
            b"\x42\x02\x0a",  # a submessage (check_tx) whose field is truncated
            b"\x0a\x03\x0a\x01\xff",  # echo message that is not UTF-8
            b"\x08\x01",  # echo (field 1) as a varint: wrong wire type
        ]:
            with self.assertRaises(pb.DecodeError, msg=garbage.hex()):
                pb.Request.decode(garbage)


class FramingTest(unittest.TestCase):
    def test_reads_consecutive_frames(self):
        stream = io.BytesIO(
            pb.frame(pb.Request(echo=pb.RequestEcho(message="x" * 300)))
            + pb.frame(pb.Request(flush=pb.RequestFlush()))
        )
        first = pb.Request.decode(pb.read_frame(stream))
        self.assertEqual(first.echo.message, "x" * 300)
        self.assertEqual(pb.Request.decode(pb.read_frame(stream)).which(), "flush")
        self.assertIsNone(pb.read_frame(stream))

    def test_refuses_bad_frames(self):
        for bad in [
            b"\xff" * 11,  # length varint longer than 10 bytes
            b"\x80",  # stream ends inside the length
            b"\x05ab",  # stream ends inside the frame
            pb.encode_varint(1 << 20),  # above the maximum below
        ]:
            with self.assertRaises(pb.FrameError, msg=bad.hex()):
                pb.read_frame(io.BytesIO(bad), max_size=1024)


if __name__ == "__main__":
    unittest.main()
