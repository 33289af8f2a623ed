//! Crash safety of the file signer: a child process (this test binary,
//! re-run with an environment switch) signs ever-increasing steps and
//! reports each signature it got; the parent kills it with SIGKILL at
//! arbitrary moments and checks that the state file always parses, never
//! goes backwards, covers every signature the child reported, and still
//! refuses a conflicting vote at the last step after a restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use engine::privval::{FilePV, FilePVPaths, Hrs, LastSignState, PrivvalError, SignStep};
use engine::types::{
    Address, BlockId, Hash, PartSetHeader, PrivateKey, Proposal, Signature, Time, Vote, VoteType,
};
use rand::{Rng, SeedableRng};

const CHAIN: &str = "crash-chain";
const CHILD_ENV: &str = "ENGINE_PRIVVAL_CRASH_CHILD_DIR";
const ITERATIONS: usize = 8;

fn paths(dir: &Path) -> FilePVPaths {
    FilePVPaths {
        key: dir.join("priv_validator_key.json"),
        state: dir.join("priv_validator_state.json"),
    }
}

fn block() -> BlockId {
    BlockId {
        hash: Hash([4; 32]),
        part_set_header: PartSetHeader {
            total: 1,
            hash: Hash([5; 32]),
        },
    }
}

fn vote(vote_type: VoteType, height: u64, round: u32, block_id: Option<BlockId>) -> Vote {
    Vote {
        vote_type,
        height,
        round,
        block_id,
        timestamp: Time {
            secs: 1_700_000_000,
            nanos: 0,
        },
        validator_address: Address([0; 20]),
        validator_index: 0,
        signature: Signature::default(),
        extension: Vec::new(),
        extension_signature: Vec::new(),
    }
}

/// The child's body: continue from the persisted state and sign proposal,
/// prevote and precommit at each following height forever, printing the
/// position of each signature once `sign_*` returned it.
fn run_child(dir: &Path) -> ! {
    use std::io::Write;
    let mut pv = FilePV::load(paths(dir)).expect("child loads");
    let mut height = pv.last_sign_state().height + 1;
    let stdout = std::io::stdout();
    loop {
        let mut p = Proposal {
            height,
            round: 0,
            pol_round: None,
            block_id: block(),
            timestamp: Time {
                secs: 1_700_000_000,
                nanos: 0,
            },
            signature: Signature::default(),
        };
        pv.sign_proposal(CHAIN, &mut p)
            .expect("child signs proposal");
        let mut out = stdout.lock();
        let _ = writeln!(out, "SIGNED {height} 0 1");
        let _ = out.flush();
        drop(out);
        for (vt, step) in [(VoteType::Prevote, 2), (VoteType::Precommit, 3)] {
            let mut v = vote(vt, height, 0, Some(block()));
            pv.sign_vote(CHAIN, &mut v, false)
                .expect("child signs vote");
            let mut out = stdout.lock();
            let _ = writeln!(out, "SIGNED {height} 0 {step}");
            let _ = out.flush();
        }
        height += 1;
    }
}

fn parse_hrs(line: &str) -> Hrs {
    let mut it = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse::<u64>().expect("number"));
    let (h, r, s) = (
        it.next().expect("h"),
        it.next().expect("r"),
        it.next().expect("s"),
    );
    Hrs {
        height: h,
        round: u32::try_from(r).expect("round"),
        step: SignStep::from_i8(i8::try_from(s).expect("step")).expect("step"),
    }
}

fn state_hrs(path: &Path) -> Hrs {
    let s = LastSignState::load(path).expect("the state file always parses");
    Hrs {
        height: s.height,
        round: s.round,
        step: s.step,
    }
}

#[test]
fn killed_signer_never_loses_or_regresses_its_state() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path());
    FilePV::new(PrivateKey::from_seed([42; 32]), p.clone())
        .save()
        .expect("save");
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut previous = state_hrs(&p.state);

    for _ in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "killed_signer_never_loses_or_regresses_its_state",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Let it sign a random number of messages, then kill it at a random
        // moment shortly after (possibly in the middle of a state write).
        let wait_for = rng.gen_range(1..30);
        let mut reported = None;
        for _ in 0..wait_for {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("SIGNED ") => reported = Some(parse_hrs(&line)),
                Some(Ok(_)) => continue,
                _ => break,
            }
        }
        let spin = rng.gen_range(0..20_000u32);
        for _ in 0..spin {
            std::hint::spin_loop();
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        // Lines the child printed before dying also count as handed out.
        for line in lines.map_while(Result::ok) {
            if line.starts_with("SIGNED ") {
                reported = Some(parse_hrs(&line));
            }
        }

        let now = state_hrs(&p.state);
        assert!(now >= previous, "state regressed from {previous} to {now}");
        if let Some(r) = reported {
            assert!(now >= r, "signature at {r} handed out but state is {now}");
        }
        previous = now;
    }
    assert!(previous.height > 0, "the child signed something");

    // After the last crash the restarted signer refuses a conflicting vote at
    // its last step, and anything below it.
    let mut pv = FilePV::load(p).expect("reload");
    let last = previous;
    let conflicting = match last.step {
        SignStep::Propose => {
            let mut prop = Proposal {
                height: last.height,
                round: last.round,
                pol_round: Some(0),
                block_id: block(),
                timestamp: Time::default(),
                signature: Signature::default(),
            };
            pv.sign_proposal(CHAIN, &mut prop)
        }
        SignStep::Prevote | SignStep::Precommit => {
            let vt = if last.step == SignStep::Prevote {
                VoteType::Prevote
            } else {
                VoteType::Precommit
            };
            let mut v = vote(vt, last.height, last.round, None);
            pv.sign_vote(CHAIN, &mut v, false)
        }
        SignStep::None => unreachable!("the child signed something"),
    };
    assert!(matches!(conflicting, Err(PrivvalError::Conflict(_))));
    let mut lower = vote(VoteType::Precommit, last.height - 1, 0, Some(block()));
    assert!(matches!(
        pv.sign_vote(CHAIN, &mut lower, false),
        Err(PrivvalError::Regression { .. })
    ));
}
