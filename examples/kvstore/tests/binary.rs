//! The `kvstore` binary: serves on a Unix socket and exits cleanly on SIGINT.

use std::process::{Command, Stdio};
use std::time::Duration;

use abci::proto::{RequestCheckTx, RequestQuery};
use abci::Client;

#[tokio::test]
async fn serves_and_stops_on_sigint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("kvstore.sock");
    let addr = format!("unix://{}", socket.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["--addr", &addr])
        .stderr(Stdio::null())
        .spawn()
        .expect("start kvstore");

    // Wait for the socket to appear (no timing assertion: just readiness).
    let mut client = None;
    for _ in 0..500 {
        if let Ok(connected) = Client::connect(&addr).await {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = client.expect("kvstore accepts connections");
    let checked = client
        .check_tx(RequestCheckTx {
            tx: b"a=b".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("check_tx");
    assert_eq!(checked.code, 0);
    let missing = client
        .query(RequestQuery {
            data: b"a".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(missing.code, kvstore::CODE_TYPE_OK);
    assert_eq!(missing.log, "does not exist");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists(), "the socket file is removed on exit");
}
