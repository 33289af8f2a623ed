//! Opening byte streams for an [`Addr`]: dialing and listening over TCP or a
//! Unix socket. Knows nothing about frames or messages.

use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::Addr;

/// The reading half of a connection.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Dials `addr` and splits the stream into halves.
pub(crate) async fn connect(addr: &Addr) -> io::Result<(ReadHalf, WriteHalf)> {
    match addr {
        Addr::Tcp(host_port) => {
            let stream = TcpStream::connect(host_port.as_str()).await?;
            // Frames are batched by the writer's buffer; do not delay them further.
            stream.set_nodelay(true)?;
            Ok(split_tcp(stream))
        }
        Addr::Unix(path) => Ok(split_unix(UnixStream::connect(path).await?)),
    }
}

fn split_tcp(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    let (r, w) = stream.into_split();
    (Box::new(r), Box::new(w))
}

fn split_unix(stream: UnixStream) -> (ReadHalf, WriteHalf) {
    let (r, w) = stream.into_split();
    (Box::new(r), Box::new(w))
}

/// A bound listening socket. A Unix socket's file is removed when the
/// listener is dropped.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`. A stale Unix socket file left by an earlier run is
    /// replaced; any other existing file is an error.
    pub(crate) async fn bind(addr: &Addr) -> io::Result<Self> {
        match addr {
            Addr::Tcp(host_port) => Ok(Listener::Tcp(TcpListener::bind(host_port.as_str()).await?)),
            Addr::Unix(path) => {
                use std::os::unix::fs::FileTypeExt;
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(path)?;
                    }
                }
                Ok(Listener::Unix(UnixListener::bind(path)?, path.clone()))
            }
        }
    }

    /// The address actually bound (the real port when binding port 0).
    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => Ok(Addr::Tcp(l.local_addr()?.to_string())),
            Listener::Unix(_, path) => Ok(Addr::Unix(path.clone())),
        }
    }

    /// Accepts one connection, returning its halves and a peer description.
    pub(crate) async fn accept(&self) -> io::Result<(ReadHalf, WriteHalf, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                stream.set_nodelay(true)?;
                let (r, w) = split_tcp(stream);
                Ok((r, w, peer.to_string()))
            }
            Listener::Unix(l, path) => {
                let (stream, _) = l.accept().await?;
                let (r, w) = split_unix(stream);
                Ok((r, w, format!("unix://{}", path.display())))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
