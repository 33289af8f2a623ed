//! CometBFT-compatible JSON-RPC over HTTP and WebSocket. Filled in by the node issue.
