//! ABCI socket protocol: client (engine side) and server (application side). Filled in by the node issue.
