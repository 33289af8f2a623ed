//! The `engine` binary's commands, run as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

fn engine(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("CMTHOME")
        .output()
        .expect("the engine binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

#[test]
fn init_then_show_commands_use_cometbft_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    let out = engine(
        &home,
        &["init", "--chain-id", "cli-chain", "--moniker", "m1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("cli-chain"));

    let id = stdout(&engine(&home, &["show-node-id"]));
    assert_eq!(id.len(), 40, "{id}");
    assert!(id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&engine(&home, &["show-validator"]))).expect("json");
    let key_file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("config/priv_validator_key.json")).expect("key file"),
    )
    .expect("json");
    assert_eq!(shown, key_file["pub_key"]);
    assert_eq!(shown["type"], "tendermint/PubKeyEd25519");

    let genesis: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("config/genesis.json")).expect("genesis"),
    )
    .expect("json");
    assert_eq!(genesis["chain_id"], "cli-chain");
    assert_eq!(genesis["validators"][0]["pub_key"], shown);
    assert_eq!(genesis["validators"][0]["power"], "10");

    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("data/priv_validator_state.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(state["height"], "0");
}

#[test]
fn version_names_the_protocols() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = engine(tmp.path(), &["version"]);
    let text = stdout(&out);
    assert!(text.contains("abci 2.0.0"), "{text}");
    assert!(text.contains("block protocol 11"), "{text}");
    assert!(text.contains("cometbft-compatible 0.38."), "{text}");
}

#[test]
fn a_wrong_config_key_is_one_line_naming_file_key_and_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    assert!(engine(&home, &["init"]).status.success());
    let path = home.join("config/config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        text.replace("[consensus]\n", "[consensus]\ntimeout_proposal = \"3s\"\n"),
    )
    .expect("write");
    let out = engine(&home, &["show-node-id"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("config/config.toml"), "{err}");
    assert!(
        err.contains("[consensus] unknown key `timeout_proposal`"),
        "{err}"
    );
    assert!(err.contains("remove it or correct its spelling"), "{err}");
}

#[test]
fn commands_on_a_missing_home_say_how_to_create_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = engine(&tmp.path().join("nowhere"), &["show-node-id"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("engine init"), "{err}");
}

#[test]
fn resets_keep_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("node");
    assert!(engine(&home, &["init"]).status.success());
    let id = stdout(&engine(&home, &["show-node-id"]));
    std::fs::write(home.join("data/engine.db"), b"stale").expect("write");
    assert!(engine(&home, &["reset-state"]).status.success());
    assert!(!home.join("data/engine.db").exists());
    assert!(home.join("data/priv_validator_state.json").exists());
    assert!(engine(&home, &["unsafe-reset-all"]).status.success());
    assert_eq!(stdout(&engine(&home, &["show-node-id"])), id);
    assert!(home.join("config/priv_validator_key.json").exists());
}
