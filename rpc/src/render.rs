//! Domain values to CometBFT v0.38 JSON, field for field and in Go's struct
//! order (serde_json's `preserve_order` keeps insertion order).
//!
//! Rules (CometBFT `libs/json` and gogoproto `jsonpb`): int64/uint64 (and Go
//! `int`) are strings, int32/uint32/uint8 numbers; `[]byte` base64, `nil`
//! slices `null`; `HexBytes` upper-case hex (`""` when empty); times Go
//! RFC3339Nano UTC; interfaces `{"type":..,"value":..}`. ABCI responses
//! with a `MarshalJSON` (ResponseCheckTx, ExecTxResult, ResponseQuery) use
//! jsonpb with defaults emitted; ResponseInfo uses `omitempty`.

use base64::Engine as _;
use engine_types::{
    Address, Block, BlockId, Commit, CommitSig, Evidence, Hash, Header, PublicKey, Time, Validator,
    Vote, VoteType,
};
use serde_json::{json, Map, Value};

use crate::backend::{
    AbciInfo, AbciQuery, BlockResult, ChannelStatus, ConsensusState, Event, FlowStatus, NetInfo,
    NodeInfo, SignedHeader, Status, TxCommitted, TxResult,
};

/// Go's zero `time.Time`, written for absent commit signatures.
pub const ZERO_TIME: Time = Time {
    secs: -62_135_596_800,
    nanos: 0,
};

/// Upper-case hex (CometBFT HexBytes).
pub fn hex_bytes(bytes: &[u8]) -> Value {
    Value::String(hex::encode_upper(bytes))
}

/// Standard base64 of a Go `[]byte`; `null` when empty (Go's nil slice).
pub fn base64_or_null(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        base64_str(bytes)
    }
}

/// Standard base64 string.
pub fn base64_str(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A 64-bit integer as a JSON string.
pub fn int_str(n: impl std::fmt::Display) -> Value {
    Value::String(n.to_string())
}

/// A time as Go's RFC3339Nano.
pub fn time(t: &Time) -> Value {
    Value::String(t.to_rfc3339())
}

fn hash(h: &Hash) -> Value {
    hex_bytes(&h.0)
}

fn address(a: &Address) -> Value {
    hex_bytes(&a.0)
}

/// `{"type":"tendermint/PubKeyEd25519","value":<base64>}`.
pub fn pub_key(k: &PublicKey) -> Value {
    json!({"type": "tendermint/PubKeyEd25519", "value": base64_str(&k.0)})
}

/// A BlockID; `None` is Go's zero BlockID (empty hashes, total 0).
pub fn block_id(id: Option<&BlockId>) -> Value {
    match id {
        Some(id) => json!({
            "hash": hash(&id.hash),
            "parts": {"total": id.part_set_header.total, "hash": hash(&id.part_set_header.hash)},
        }),
        None => json!({"hash": "", "parts": {"total": 0, "hash": ""}}),
    }
}

/// A block header.
pub fn header(h: &Header) -> Value {
    let mut version = Map::new();
    // cmtversion.Consensus fields are `omitempty`.
    if h.version.block != 0 {
        version.insert("block".into(), int_str(h.version.block));
    }
    if h.version.app != 0 {
        version.insert("app".into(), int_str(h.version.app));
    }
    json!({
        "version": version,
        "chain_id": h.chain_id,
        "height": int_str(h.height),
        "time": time(&h.time),
        "last_block_id": block_id(h.last_block_id.as_ref()),
        "last_commit_hash": hash(&h.last_commit_hash),
        "data_hash": hash(&h.data_hash),
        "validators_hash": hash(&h.validators_hash),
        "next_validators_hash": hash(&h.next_validators_hash),
        "consensus_hash": hash(&h.consensus_hash),
        "app_hash": hex_bytes(&h.app_hash),
        "last_results_hash": hash(&h.last_results_hash),
        "evidence_hash": hash(&h.evidence_hash),
        "proposer_address": address(&h.proposer_address),
    })
}

/// A commit signature with its BlockIDFlag (1 absent, 2 commit, 3 nil).
pub fn commit_sig(s: &CommitSig) -> Value {
    match s {
        CommitSig::Absent => json!({
            "block_id_flag": 1,
            "validator_address": "",
            "timestamp": time(&ZERO_TIME),
            "signature": null,
        }),
        CommitSig::Commit {
            validator_address,
            timestamp,
            signature,
        }
        | CommitSig::Nil {
            validator_address,
            timestamp,
            signature,
        } => json!({
            "block_id_flag": if matches!(s, CommitSig::Commit { .. }) { 2 } else { 3 },
            "validator_address": address(validator_address),
            "timestamp": time(timestamp),
            "signature": base64_str(&signature.0),
        }),
    }
}

/// A commit; `None` is the empty commit CometBFT writes at the initial height.
pub fn commit(c: Option<&Commit>) -> Value {
    match c {
        Some(c) => json!({
            "height": int_str(c.height),
            "round": c.round,
            "block_id": block_id(Some(&c.block_id)),
            "signatures": c.signatures.iter().map(commit_sig).collect::<Vec<_>>(),
        }),
        None => json!({
            "height": "0",
            "round": 0,
            "block_id": block_id(None),
            "signatures": [],
        }),
    }
}

/// A vote (inside evidence).
pub fn vote(v: &Vote) -> Value {
    json!({
        "type": match v.vote_type { VoteType::Prevote => 1, VoteType::Precommit => 2 },
        "height": int_str(v.height),
        "round": v.round,
        "block_id": block_id(v.block_id.as_ref()),
        "timestamp": time(&v.timestamp),
        "validator_address": address(&v.validator_address),
        "validator_index": v.validator_index,
        "signature": base64_str(&v.signature.0),
        "extension": base64_or_null(&v.extension),
        "extension_signature": base64_or_null(&v.extension_signature),
    })
}

/// Evidence as a registered interface. DuplicateVoteEvidence's last three
/// fields have no json tags in Go, so they keep their Go names.
pub fn evidence(e: &Evidence) -> Value {
    match e {
        Evidence::DuplicateVote(d) => json!({
            "type": "tendermint/DuplicateVoteEvidence",
            "value": {
                "vote_a": vote(&d.vote_a),
                "vote_b": vote(&d.vote_b),
                "TotalVotingPower": int_str(d.total_voting_power),
                "ValidatorPower": int_str(d.validator_power),
                "Timestamp": time(&d.timestamp),
            },
        }),
    }
}

/// A block: header, data, evidence, last_commit.
pub fn block(b: &Block) -> Value {
    json!({
        "header": header(&b.header),
        "data": {"txs": b.txs.iter().map(|t| base64_str(t)).collect::<Vec<_>>()},
        "evidence": {"evidence": b.evidence.iter().map(evidence).collect::<Vec<_>>()},
        "last_commit": commit(b.last_commit.as_ref()),
    })
}

/// ResultBlock `{block_id, block}`.
pub fn result_block(r: &BlockResult) -> Value {
    match &r.block {
        Some(b) => json!({"block_id": block_id(Some(&r.block_id)), "block": block(b)}),
        None => json!({"block_id": block_id(None), "block": null}),
    }
}

/// ResultCommit `{signed_header:{header, commit}, canonical}`.
pub fn result_commit(r: &SignedHeader) -> Value {
    json!({
        "signed_header": {"header": header(&r.header), "commit": commit(Some(&r.commit))},
        "canonical": r.canonical,
    })
}

/// A validator `{address, pub_key, voting_power, proposer_priority}`.
pub fn validator(v: &Validator) -> Value {
    json!({
        "address": address(&v.address),
        "pub_key": pub_key(&v.pub_key),
        "voting_power": int_str(v.voting_power),
        "proposer_priority": int_str(v.proposer_priority),
    })
}

/// ResultValidators `{block_height, validators, count, total}`.
pub fn result_validators(block_height: u64, page: &[Validator], total: usize) -> Value {
    json!({
        "block_height": int_str(block_height),
        "validators": page.iter().map(validator).collect::<Vec<_>>(),
        "count": int_str(page.len()),
        "total": int_str(total),
    })
}

/// `consensus_state`: `{"round_state": RoundStateSimple}`.
pub fn result_consensus_state(c: &ConsensusState) -> Value {
    let opt_hash = |h: &Option<Hash>| h.as_ref().map_or_else(|| hex_bytes(&[]), hash);
    let votes: Vec<Value> = c
        .votes
        .iter()
        .map(|r| {
            json!({
                "round": r.round,
                "prevotes": r.prevotes,
                "prevotes_bit_array": r.prevotes_bit_array,
                "precommits": r.precommits,
                "precommits_bit_array": r.precommits_bit_array,
            })
        })
        .collect();
    let proposer = match &c.proposer {
        Some((address, index)) => json!({"address": hex_bytes(&address.0), "index": index}),
        None => json!({"address": "", "index": -1}),
    };
    json!({
        "round_state": {
            "height/round/step": format!("{}/{}/{}", c.height, c.round, c.step),
            "start_time": time(&c.start_time),
            "proposal_block_hash": opt_hash(&c.proposal_block_hash),
            "locked_block_hash": opt_hash(&c.locked_block_hash),
            "valid_block_hash": opt_hash(&c.valid_block_hash),
            "height_vote_set": votes,
            "proposer": proposer,
        }
    })
}

/// A DefaultNodeInfo, as in `status` and `net_info`.
pub fn node_info(n: &NodeInfo) -> Value {
    json!({
        "protocol_version": {
            "p2p": int_str(n.protocol_version.p2p),
            "block": int_str(n.protocol_version.block),
            "app": int_str(n.protocol_version.app),
        },
        "id": n.id,
        "listen_addr": n.listen_addr,
        "network": n.network,
        "version": n.version,
        "channels": hex_bytes(&n.channels),
        "moniker": n.moniker,
        "other": {"tx_index": n.tx_index, "rpc_address": n.rpc_address},
    })
}

/// ResultStatus `{node_info, sync_info, validator_info}`.
pub fn result_status(s: &Status) -> Value {
    let y = &s.sync_info;
    let opt_hash = |h: &Option<Hash>| h.as_ref().map_or_else(|| hex_bytes(&[]), hash);
    json!({
        "node_info": node_info(&s.node_info),
        "sync_info": {
            "latest_block_hash": opt_hash(&y.latest_block_hash),
            "latest_app_hash": hex_bytes(&y.latest_app_hash),
            "latest_block_height": int_str(y.latest_block_height),
            "latest_block_time": time(&y.latest_block_time),
            "earliest_block_hash": opt_hash(&y.earliest_block_hash),
            "earliest_app_hash": hex_bytes(&y.earliest_app_hash),
            "earliest_block_height": int_str(y.earliest_block_height),
            "earliest_block_time": time(&y.earliest_block_time),
            "catching_up": y.catching_up,
        },
        "validator_info": {
            "address": address(&s.validator_info.address),
            "pub_key": pub_key(&s.validator_info.pub_key),
            "voting_power": int_str(s.validator_info.voting_power),
        },
    })
}

/// flowrate.Status: Go field names (no json tags), int64 and durations
/// as strings, `Progress` a number.
fn flow_status(f: &FlowStatus) -> Value {
    json!({
        "Start": time(&f.start),
        "Bytes": int_str(f.bytes),
        "Samples": int_str(f.samples),
        "InstRate": int_str(f.inst_rate),
        "CurRate": int_str(f.cur_rate),
        "AvgRate": int_str(f.avg_rate),
        "PeakRate": int_str(f.peak_rate),
        "BytesRem": int_str(f.bytes_rem),
        "Duration": int_str(f.duration_ns),
        "Idle": int_str(f.idle_ns),
        "TimeRem": int_str(f.time_rem_ns),
        "Progress": f.progress,
        "Active": f.active,
    })
}

/// conn.ChannelStatus: `ID` a number (a byte), the Go `int`s strings.
fn channel_status(c: &ChannelStatus) -> Value {
    json!({
        "ID": c.id,
        "SendQueueCapacity": int_str(c.send_queue_capacity),
        "SendQueueSize": int_str(c.send_queue_size),
        "Priority": int_str(c.priority),
        "RecentlySent": int_str(c.recently_sent),
    })
}

/// ResultNetInfo `{listening, listeners, n_peers, peers}`.
pub fn result_net_info(n: &NetInfo) -> Value {
    let peers: Vec<Value> = n
        .peers
        .iter()
        .map(|p| {
            let c = &p.connection_status;
            json!({
                "node_info": node_info(&p.node_info),
                "is_outbound": p.is_outbound,
                "connection_status": {
                    "Duration": int_str(c.duration_ns),
                    "SendMonitor": flow_status(&c.send_monitor),
                    "RecvMonitor": flow_status(&c.recv_monitor),
                    "Channels": c.channels.iter().map(channel_status).collect::<Vec<_>>(),
                },
                "remote_ip": p.remote_ip,
            })
        })
        .collect();
    json!({
        "listening": n.listening,
        "listeners": n.listeners,
        "n_peers": int_str(n.peers.len()),
        "peers": peers,
    })
}

/// ResultABCIInfo `{response: ResponseInfo}`; ResponseInfo's fields are
/// `omitempty` (no jsonpb marshaller in Go).
pub fn result_abci_info(i: &AbciInfo) -> Value {
    let mut r = Map::new();
    if !i.data.is_empty() {
        r.insert("data".into(), Value::String(i.data.clone()));
    }
    if !i.version.is_empty() {
        r.insert("version".into(), Value::String(i.version.clone()));
    }
    if i.app_version != 0 {
        r.insert("app_version".into(), int_str(i.app_version));
    }
    if i.last_block_height != 0 {
        r.insert("last_block_height".into(), int_str(i.last_block_height));
    }
    if !i.last_block_app_hash.is_empty() {
        r.insert(
            "last_block_app_hash".into(),
            base64_str(&i.last_block_app_hash),
        );
    }
    json!({ "response": r })
}

/// ResultABCIQuery `{response: ResponseQuery}` (jsonpb: defaults emitted,
/// `proofOps` in lowerCamel case).
pub fn result_abci_query(q: &AbciQuery) -> Value {
    let proof_ops = match &q.proof_ops {
        None => Value::Null,
        Some(ops) => json!({
            "ops": ops.iter().map(|o| json!({
                "type": o.op_type,
                "key": base64_or_null(&o.key),
                "data": base64_or_null(&o.data),
            })).collect::<Vec<_>>(),
        }),
    };
    json!({"response": {
        "code": q.code,
        "log": q.log,
        "info": q.info,
        "index": int_str(q.index),
        "key": base64_or_null(&q.key),
        "value": base64_or_null(&q.value),
        "proofOps": proof_ops,
        "height": int_str(q.height),
        "codespace": q.codespace,
    }})
}

fn event(e: &Event) -> Value {
    json!({
        "type": e.kind,
        "attributes": e.attributes.iter().map(|a| json!({
            "key": a.key, "value": a.value, "index": a.index,
        })).collect::<Vec<_>>(),
    })
}

/// ResponseCheckTx / ExecTxResult (jsonpb, defaults emitted).
pub fn tx_result(r: &TxResult) -> Value {
    json!({
        "code": r.code,
        "data": base64_or_null(&r.data),
        "log": r.log,
        "info": r.info,
        "gas_wanted": int_str(r.gas_wanted),
        "gas_used": int_str(r.gas_used),
        "events": r.events.iter().map(event).collect::<Vec<_>>(),
        "codespace": r.codespace,
    })
}

/// ResultBroadcastTx `{code, data (hex), log, codespace, hash}`.
pub fn result_broadcast_tx(r: &TxResult, tx_hash: &Hash) -> Value {
    json!({
        "code": r.code,
        "data": hex_bytes(&r.data),
        "log": r.log,
        "codespace": r.codespace,
        "hash": hash(tx_hash),
    })
}

/// ResultBroadcastTxCommit `{check_tx, tx_result, hash, height}`.
pub fn result_broadcast_tx_commit(r: &TxCommitted, tx_hash: &Hash) -> Value {
    json!({
        "check_tx": tx_result(&r.check_tx),
        "tx_result": tx_result(&r.tx_result),
        "hash": hash(tx_hash),
        "height": int_str(r.height),
    })
}
