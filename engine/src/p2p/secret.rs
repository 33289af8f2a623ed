//! CometBFT's SecretConnection (X25519 key exchange, ed25519 authentication,
//! ChaCha20-Poly1305 frames of 1024 bytes), from the `tendermint-p2p` crate,
//! and the bridge from its blocking halves to the async byte channels the
//! MConnection reads and writes.
//!
//! Owns the TCP stream once it is handed over: buffering, the handshake,
//! the two I/O threads and closing. The crate is synchronous, so the
//! handshake runs on a blocking thread and each direction gets an OS thread.
//! Never interprets the plaintext.
//!
//! Two rules keep the crate safe to use (research §1.3): every read from its
//! receiving half uses a buffer of at least [`DATA_MAX_SIZE`] bytes (a
//! smaller one panics when a frame is longer than the buffer), and only
//! `Version::V0_34` is used (the others panic without the `amino` feature).

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use tendermint_p2p::secret_connection::{
    PublicKey as ScPublicKey, Receiver, SecretConnection, Sender, Version, DATA_MAX_SIZE,
};
use tendermint_std_ext::TryClone;
use tokio::sync::mpsc;

use super::P2pError;
use crate::types::{PrivateKey, PublicKey};

/// Socket buffer size each way: a batch of frames per system call instead
/// of one call per 1044-byte frame.
const IO_BUFFER: usize = 64 * 1024;

/// Plaintext chunks (up to 1 KiB each) read ahead of the MConnection.
const INCOMING_CHUNKS: usize = 64;

/// Plaintext buffers queued for the writer thread.
const OUTGOING_CHUNKS: usize = 64;

/// The writer thread encrypts up to this much queued plaintext per write.
const WRITE_BATCH: usize = 64 * 1024;

/// The TCP stream as the crate's I/O handler: buffered both ways, and
/// clonable for `split`.
struct BufferedStream {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl BufferedStream {
    fn new(stream: TcpStream) -> io::Result<Self> {
        let write_half = stream.try_clone()?;
        Ok(BufferedStream {
            reader: BufReader::with_capacity(IO_BUFFER, stream),
            writer: BufWriter::with_capacity(IO_BUFFER, write_half),
        })
    }
}

impl Read for BufferedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The handshake writes, then waits for the peer's answer: what we
        // wrote must be on the wire before we block reading.
        if !self.writer.buffer().is_empty() {
            self.writer.flush()?;
        }
        self.reader.read(buf)
    }
}

impl Write for BufferedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl TryClone for BufferedStream {
    type Error = io::Error;

    /// The clone has empty buffers. `split` gives the clone to the sending
    /// half and keeps the original (with any bytes already read ahead) for
    /// the receiving half, so no received byte is lost; unsent bytes would
    /// be, so they are refused.
    fn try_clone(&self) -> io::Result<Self> {
        if !self.writer.buffer().is_empty() {
            return Err(io::Error::other(
                "unflushed bytes when splitting the stream",
            ));
        }
        BufferedStream::new(self.reader.get_ref().try_clone()?)
    }
}

/// The receiving half: decrypted plaintext, readable with any buffer size.
pub struct SecretReader {
    inner: Receiver<BufferedStream>,
    /// Plaintext of the last frame not yet handed out.
    buf: Box<[u8; DATA_MAX_SIZE]>,
    start: usize,
    end: usize,
}

impl Read for SecretReader {
    /// Never returns `Ok(0)` for a non-empty `out`: the end of the stream
    /// is an error (the crate reads whole frames), and an empty frame is
    /// skipped.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.start == self.end {
            loop {
                // Whole frames only: the buffer is DATA_MAX_SIZE bytes.
                let n = self.inner.read(&mut self.buf[..])?;
                if n > 0 {
                    self.start = 0;
                    self.end = n;
                    break;
                }
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// The sending half: plaintext in, encrypted frames out.
pub struct SecretWriter {
    inner: Sender<BufferedStream>,
}

impl Write for SecretWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Runs the SecretConnection handshake on `stream` (blocking) and returns
/// the two halves and the peer's authenticated public key.
///
/// The crate can panic on a malformed frame from the peer during the
/// handshake (it reads the signature message with a 103-byte buffer); such
/// a panic is caught here and reported as a handshake failure.
pub fn handshake(
    stream: TcpStream,
    key: &PrivateKey,
) -> Result<(SecretReader, SecretWriter, PublicKey), P2pError> {
    let io = BufferedStream::new(stream).map_err(|e| P2pError::Io {
        what: "preparing the socket".into(),
        source: e,
    })?;
    let signing_key = key.0.clone();
    let made = std::panic::catch_unwind(AssertUnwindSafe(move || {
        SecretConnection::new(io, signing_key, Version::V0_34)
    }))
    .map_err(|_| P2pError::Handshake("malformed handshake message".into()))?
    .map_err(|e| P2pError::Handshake(e.to_string()))?;
    let (sender, receiver) = made
        .split()
        .map_err(|e| P2pError::Handshake(e.to_string()))?;
    let remote = match receiver.remote_pubkey() {
        ScPublicKey::Ed25519(vk) => PublicKey(vk.to_bytes()),
    };
    Ok((
        SecretReader {
            inner: receiver,
            buf: Box::new([0; DATA_MAX_SIZE]),
            start: 0,
            end: 0,
        },
        SecretWriter { inner: sender },
        remote,
    ))
}

/// Ends a bridged connection: shuts the socket down both ways, which wakes
/// and ends both I/O threads. Cheap to clone; closing twice is harmless.
#[derive(Clone)]
pub struct Closer(Arc<TcpStream>);

impl Closer {
    /// Shuts the socket down.
    pub fn close(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// The plaintext side of an established encrypted connection, the seam
/// with the MConnection (`conn::spawn`).
pub struct PlainStream {
    /// Plaintext chunks in order; closed when the connection is gone.
    pub incoming: mpsc::Receiver<Bytes>,
    /// Plaintext to send; written and flushed in order.
    pub outgoing: mpsc::Sender<Bytes>,
    /// Closes the socket.
    pub closer: Closer,
}

/// Starts the two I/O threads that move plaintext between the halves and
/// the channels. Either thread ending (socket error, peer gone, channel
/// dropped) shuts the socket down, so the other one ends too. Dropping the
/// returned channels therefore closes the connection.
pub fn bridge(
    mut reader: SecretReader,
    mut writer: SecretWriter,
    socket: &TcpStream,
    label: &str,
) -> Result<PlainStream, P2pError> {
    let io_err = |what: &str| {
        let what = what.to_string();
        move |source| P2pError::Io { what, source }
    };
    let closer = Closer(Arc::new(
        socket.try_clone().map_err(io_err("cloning the socket"))?,
    ));
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(INCOMING_CHUNKS);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUTGOING_CHUNKS);

    let read_closer = closer.clone();
    std::thread::Builder::new()
        .name(format!("p2p-read-{label}"))
        .spawn(move || {
            // At least DATA_MAX_SIZE, so no read can split a frame.
            let mut chunk = [0u8; DATA_MAX_SIZE];
            while let Ok(n) = reader.read(&mut chunk) {
                if in_tx
                    .blocking_send(Bytes::copy_from_slice(&chunk[..n]))
                    .is_err()
                {
                    break;
                }
            }
            read_closer.close();
        })
        .map_err(io_err("starting the reader thread"))?;

    let write_closer = closer.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("p2p-write-{label}"))
        .spawn(move || {
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            'conn: while let Some(first) = out_rx.blocking_recv() {
                let mut next = Some(first);
                while let Some(chunk) = next {
                    batch.extend_from_slice(&chunk);
                    next = out_rx.try_recv().ok();
                    if batch.len() >= WRITE_BATCH || next.is_none() {
                        if writer.write_all(&batch).is_err() {
                            break 'conn;
                        }
                        batch.clear();
                    }
                }
                // The queue is empty: put everything on the wire.
                if writer.flush().is_err() {
                    break;
                }
            }
            write_closer.close();
        });
    if let Err(e) = spawned {
        // The reader thread is running: stop it.
        closer.close();
        return Err(io_err("starting the writer thread")(e));
    }
    Ok(PlainStream {
        incoming: in_rx,
        outgoing: out_tx,
        closer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn handshake_authenticates_both_keys_and_reads_with_any_buffer_size() {
        let (a, b) = pair();
        let key_a = PrivateKey::from_seed([1; 32]);
        let key_b = PrivateKey::from_seed([2; 32]);
        let pub_a = key_a.public_key();
        let pub_b = key_b.public_key();
        let other = std::thread::spawn(move || {
            let (mut r, mut w, remote) = handshake(b, &key_b).expect("handshake b");
            assert_eq!(remote, pub_a);
            // Echo 3000 bytes, read one byte at a time (smaller than a frame).
            let mut got = Vec::new();
            let mut one = [0u8; 1];
            while got.len() < 3000 {
                r.read_exact(&mut one).expect("read");
                got.push(one[0]);
            }
            w.write_all(&got).expect("write");
            w.flush().expect("flush");
        });
        let (mut r, mut w, remote) = handshake(a, &key_a).expect("handshake a");
        assert_eq!(remote, pub_b);
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        w.write_all(&data).expect("write");
        w.flush().expect("flush");
        let mut back = vec![0u8; 3000];
        r.read_exact(&mut back).expect("read");
        assert_eq!(back, data);
        other.join().expect("other side");
    }

    #[test]
    fn garbage_instead_of_a_handshake_is_an_error() {
        let (mut a, b) = pair();
        let side = std::thread::spawn(move || handshake(b, &PrivateKey::from_seed([2; 32])));
        // A length byte of 34 then 34 bytes that are not `0a 20 <key>`.
        a.write_all(&[34]).expect("write");
        a.write_all(&[0x55; 34]).expect("write");
        let e = side.join().expect("no panic").err().expect("refused");
        assert!(matches!(e, P2pError::Handshake(_)), "{e}");
    }
}
