//! A key-value ABCI application. Filled in by the node issue.
fn main() {}
