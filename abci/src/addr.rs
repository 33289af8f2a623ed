//! ABCI addresses in CometBFT's notation.
//!
//! `tcp://host:port`, `unix:///absolute/path` (or `unix://relative/path`),
//! and a bare `host:port` meaning TCP, as `cmtnet.ProtocolAndAddress` reads
//! `proxy_app`. This module only parses and prints; it opens nothing.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// Where an ABCI server listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A TCP `host:port` (host may be a name, an IPv4 or a bracketed IPv6).
    Tcp(String),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl Addr {
    /// Parses a CometBFT-style address; see the module docs.
    pub fn parse(address: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        let (scheme, rest) = match address.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("tcp", address),
        };
        match scheme {
            "tcp" => {
                let Some((host, port)) = rest.rsplit_once(':') else {
                    return Err(invalid("a TCP address needs host:port"));
                };
                if host.is_empty() {
                    return Err(invalid("the host is empty"));
                }
                if port.parse::<u16>().is_err() {
                    return Err(invalid("the port is not a number from 0 to 65535"));
                }
                Ok(Addr::Tcp(rest.to_owned()))
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid("the socket path is empty"));
                }
                Ok(Addr::Unix(PathBuf::from(rest)))
            }
            "grpc" => Err(invalid("gRPC ABCI is not supported; use tcp:// or unix://")),
            _ => Err(invalid("the scheme must be tcp:// or unix://")),
        }
    }
}

impl FromStr for Addr {
    type Err = Error;
    fn from_str(address: &str) -> Result<Self, Error> {
        Addr::parse(address)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(host_port) => write!(f, "tcp://{host_port}"),
            Addr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cometbft_addresses() {
        let tcp = |s: &str| Addr::Tcp(s.to_owned());
        assert_eq!(
            Addr::parse("tcp://127.0.0.1:26658").ok(),
            Some(tcp("127.0.0.1:26658"))
        );
        assert_eq!(
            Addr::parse("127.0.0.1:26658").ok(),
            Some(tcp("127.0.0.1:26658"))
        );
        assert_eq!(
            Addr::parse("tcp://localhost:1").ok(),
            Some(tcp("localhost:1"))
        );
        assert_eq!(
            Addr::parse("tcp://[::1]:26658").ok(),
            Some(tcp("[::1]:26658"))
        );
        assert_eq!(
            Addr::parse("unix:///tmp/app.sock").ok(),
            Some(Addr::Unix("/tmp/app.sock".into()))
        );
        assert_eq!(
            Addr::parse("unix://app.sock").ok(),
            Some(Addr::Unix("app.sock".into()))
        );
    }

    #[test]
    fn rejects_what_it_cannot_dial() {
        for bad in [
            "tcp://127.0.0.1",
            "tcp://:80",
            "tcp://h:99999",
            "unix://",
            "grpc://h:1",
            "http://h:1",
            "h",
        ] {
            assert!(
                matches!(Addr::parse(bad), Err(Error::InvalidAddress { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn prints_back_in_the_same_notation() {
        for s in ["tcp://127.0.0.1:26658", "unix:///tmp/app.sock"] {
            assert_eq!(
                Addr::parse(s).map(|a| a.to_string()).ok().as_deref(),
                Some(s)
            );
        }
    }
}
