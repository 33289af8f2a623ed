//! The consensus write-ahead log.
//!
//! Every [`Input`](crate::consensus::Input) is appended here before the
//! consensus core handles it; because the core is deterministic, a
//! restarted node rebuilds its round state by feeding the inputs logged
//! since the last end-of-height marker back to the core. This module owns
//! the directory `data/cs.wal/` and nothing else. It must never interpret
//! inputs, never drop a record that was reported durable, and never let a
//! damaged file crash-loop the node: a torn tail is cut off and reported,
//! damage in the middle is a typed error (naming file and offset) until an
//! operator runs [`repair`].
//!
//! # File format (ours, not CometBFT's WAL encoding)
//!
//! The directory holds segments `wal.0000000000`, `wal.0000000001`, … in
//! write order; the highest-numbered one is being appended to. A segment is
//! a sequence of records, and a record never spans two segments:
//!
//! ```text
//! record  = crc32c(payload) : u32 big-endian
//!           len(payload)    : u32 big-endian, at most MAX_PAYLOAD_LEN
//!           payload         : protobuf WalRecord { time, oneof msg }
//! ```
//!
//! This is CometBFT's framing (`consensus/wal.go`) with our own envelope
//! ([`record::WalRecord`]): the consensus inputs (votes, proposals, blocks
//! and validator sets as tendermint-proto v0.38 messages) and an
//! `EndHeight(h)` marker written, and fsynced, once block `h` and its state
//! are saved. A fresh log starts with `EndHeight(0)`, as CometBFT's does.
//!
//! # Durability
//!
//! [`Wal::append`] takes a [`Durability`]: [`Durability::Sync`] (our own
//! signed votes and proposals, and every `EndHeight`) is flushed and
//! fsynced before `append` returns; [`Durability::Buffered`] (messages from
//! peers, timeouts, app answers, which can be received again) is fsynced by
//! the next synced write, by [`Wal::flush_and_sync`], or by the first write
//! after [`WalOptions::flush_interval`] has passed since the last fsync.
//! The node should also call [`Wal::flush_and_sync`] on a timer of that
//! interval so an idle log does not keep unsynced records.
//!
//! # Rotation and pruning
//!
//! When a segment reaches [`WalOptions::segment_size`] a new one is started.
//! On each `EndHeight(h)`, segments that are entirely before the last
//! `EndHeight(h - keep_heights)` marker are deleted: no replay of a height
//! above `h - keep_heights` needs them.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message;

pub use record::{TimedMessage, WalMessage, MAX_PAYLOAD_LEN};

use crate::types::{Height, Time};
use record::FrameError;

/// Checksummed bytes spent at most to decide whether damage is a torn tail.
const TAIL_PROBE_BUDGET: usize = 64 << 20;

/// How an appended record must be persisted before [`Wal::append`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Flushed and fsynced before returning (own messages, `EndHeight`).
    Sync,
    /// Buffered; fsynced later (see the module docs).
    Buffered,
}

/// Tuning of a [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is closed and a new one started once it reaches this size
    /// (default 10 MiB).
    pub segment_size: u64,
    /// Buffered records are fsynced by the first write after this much time
    /// since the last fsync (default 2 s, CometBFT's flush interval).
    pub flush_interval: Duration,
    /// Segments needed only to replay heights at or below the latest
    /// `EndHeight` minus this many are deleted (default 10).
    pub keep_heights: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 10 << 20,
            flush_interval: Duration::from_secs(2),
            keep_heights: 10,
        }
    }
}

/// WAL failures.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A WAL file or the directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record before the end of the log is damaged; nothing after it can
    /// be trusted to follow it. [`repair`] truncates the log there.
    #[error("{}: corrupt WAL record at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the damaged record in the segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A message is too large to log.
    #[error("WAL record of {size} bytes exceeds the maximum of {max}")]
    RecordTooLarge {
        /// Encoded size.
        size: usize,
        /// [`MAX_PAYLOAD_LEN`].
        max: usize,
    },
}

/// A torn tail cut off when the log was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment that was cut.
    pub path: PathBuf,
    /// Its new length: where the damaged record started.
    pub offset: u64,
    /// How many bytes were dropped.
    pub dropped: u64,
    /// What was wrong with the first dropped record.
    pub reason: String,
}

/// An end-of-height marker's place in the log.
#[derive(Clone, Copy, Debug)]
struct Marker {
    height: Height,
    segment: u64,
    /// Offset just after the marker record.
    end: u64,
}

#[derive(Clone, Debug)]
struct Segment {
    index: u64,
    path: PathBuf,
}

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    segments: Vec<Segment>,
    markers: Vec<Marker>,
    writer: BufWriter<File>,
    /// Logical length of the current segment, buffered bytes included.
    len: u64,
    unsynced: bool,
    last_sync: Instant,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_owned(),
        source,
    }
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("wal.{index:010}"))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The segments in `dir`, oldest first. Other files are ignored.
fn list_segments(dir: &Path) -> Result<Vec<Segment>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("wal."))
            .filter(|n| n.len() == 10)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push(Segment {
            index,
            path: entry.path(),
        });
    }
    out.sort_by_key(|s| s.index);
    Ok(out)
}

/// The outcome of reading one segment's records.
struct Scan {
    /// (offset, envelope) of each valid record.
    records: Vec<(u64, record::WalRecord)>,
    /// The first damaged record, if any: (offset, error).
    damage: Option<(u64, FrameError)>,
    bytes: Vec<u8>,
}

fn scan(path: &Path) -> Result<Scan, WalError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let mut records = Vec::new();
    let mut at = 0usize;
    let mut damage = None;
    while at < bytes.len() {
        match record::read_frame(&bytes[at..]) {
            Ok((r, n)) => {
                records.push((at as u64, r));
                at += n;
            }
            Err(e) => {
                damage = Some((at as u64, e));
                break;
            }
        }
    }
    Ok(Scan {
        records,
        damage,
        bytes,
    })
}

fn end_height(r: &record::WalRecord) -> Option<Height> {
    match &r.msg {
        Some(record::wal_record::Msg::EndHeight(m)) => Some(m.height),
        _ => None,
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, checking every record.
    /// A torn tail of the last segment is truncated, logged as a warning and
    /// returned; damage anywhere else is [`WalError::Corrupt`]. A new log is
    /// started with a synced `EndHeight(0)` marker written at `now`.
    pub fn open(
        dir: &Path,
        opts: WalOptions,
        now: Time,
    ) -> Result<(Wal, Option<Truncation>), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments = list_segments(dir)?;
        if segments.is_empty() {
            let path = segment_path(dir, 0);
            File::create(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            segments.push(Segment { index: 0, path });
        }
        let mut markers = Vec::new();
        let mut truncation = None;
        // No valid record anywhere (a new log, or one that crashed before
        // its first marker was durable): start it with EndHeight(0).
        let mut fresh = true;
        let last = segments.len() - 1;
        let mut len = 0;
        for (i, seg) in segments.iter().enumerate() {
            let s = scan(&seg.path)?;
            fresh &= s.records.is_empty();
            for (off, r) in &s.records {
                if let Some(height) = end_height(r) {
                    markers.push(Marker {
                        height,
                        segment: seg.index,
                        end: off + (record::HEADER_LEN + r.encoded_len()) as u64,
                    });
                }
            }
            len = s.bytes.len() as u64;
            if let Some((offset, err)) = s.damage {
                let tail = &s.bytes[offset as usize..];
                if i != last || !record::is_torn_tail(tail, TAIL_PROBE_BUDGET) {
                    return Err(WalError::Corrupt {
                        path: seg.path.clone(),
                        offset,
                        reason: err.to_string(),
                    });
                }
                tracing::warn!(
                    path = %seg.path.display(),
                    offset,
                    dropped = tail.len(),
                    reason = %err,
                    "truncating the torn tail of the consensus WAL"
                );
                truncate(&seg.path, offset)?;
                truncation = Some(Truncation {
                    path: seg.path.clone(),
                    offset,
                    dropped: tail.len() as u64,
                    reason: err.to_string(),
                });
                len = offset;
            }
        }
        let current = &segments[last];
        let file = OpenOptions::new()
            .append(true)
            .open(&current.path)
            .map_err(io_err(&current.path))?;
        let mut wal = Wal {
            dir: dir.to_owned(),
            opts,
            segments,
            markers,
            writer: BufWriter::new(file),
            len,
            unsynced: false,
            last_sync: Instant::now(),
        };
        if fresh {
            wal.append(now, &WalMessage::EndHeight(0), Durability::Sync)?;
        }
        Ok((wal, truncation))
    }

    /// Appends `msg` written at `time`. `EndHeight` is always synced; see
    /// the module docs for [`Durability`]. A failed append leaves the log
    /// unusable for further writes (reopen it: the tail check cleans up).
    pub fn append(
        &mut self,
        time: Time,
        msg: &WalMessage,
        durability: Durability,
    ) -> Result<(), WalError> {
        let payload = record::to_record(time, msg).encode_to_vec();
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(WalError::RecordTooLarge {
                size: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let framed = record::frame(&payload);
        let path = self.current_path().to_owned();
        self.writer.write_all(&framed).map_err(io_err(&path))?;
        let start = self.len;
        self.len += framed.len() as u64;
        self.unsynced = true;
        let end_height = match msg {
            WalMessage::EndHeight(h) => Some(*h),
            WalMessage::Input(_) => None,
        };
        let due = self.last_sync.elapsed() >= self.opts.flush_interval;
        if durability == Durability::Sync || end_height.is_some() || due {
            self.flush_and_sync()?;
        }
        if let Some(height) = end_height {
            self.markers.push(Marker {
                height,
                segment: self.current_index(),
                end: start + framed.len() as u64,
            });
            self.prune(height)?;
        }
        if self.len >= self.opts.segment_size {
            self.rotate()?;
        }
        Ok(())
    }

    /// Flushes buffered records and fsyncs the current segment.
    pub fn flush_and_sync(&mut self) -> Result<(), WalError> {
        if !self.unsynced {
            return Ok(());
        }
        let path = self.current_path().to_owned();
        self.writer.flush().map_err(io_err(&path))?;
        self.writer.get_ref().sync_data().map_err(io_err(&path))?;
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The messages logged after the last `EndHeight(height)` marker, in
    /// order, or `None` if there is no such marker (never written, or
    /// pruned). To resume height `h`, ask for `h - 1`; a later `EndHeight`
    /// among the result means height `h` had already ended.
    pub fn replay_after(&mut self, height: Height) -> Result<Option<Vec<TimedMessage>>, WalError> {
        self.flush_and_sync()?;
        let Some(marker) = self
            .markers
            .iter()
            .rev()
            .find(|m| m.height == height)
            .copied()
        else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for seg in self.segments.iter().filter(|s| s.index >= marker.segment) {
            let s = scan(&seg.path)?;
            if let Some((offset, err)) = s.damage {
                return Err(WalError::Corrupt {
                    path: seg.path.clone(),
                    offset,
                    reason: err.to_string(),
                });
            }
            for (off, r) in s.records {
                if seg.index == marker.segment && off < marker.end {
                    continue;
                }
                let m = record::from_record(r).map_err(|reason| WalError::Corrupt {
                    path: seg.path.clone(),
                    offset: off,
                    reason,
                })?;
                out.push(m);
            }
        }
        Ok(Some(out))
    }

    /// The highest `EndHeight` marker in the log.
    pub fn last_end_height(&self) -> Option<Height> {
        self.markers.iter().map(|m| m.height).max()
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn current_path(&self) -> &Path {
        // `segments` is never empty: `open` creates the first one and
        // pruning never removes the current one.
        self.segments.last().map_or(self.dir.as_path(), |s| &s.path)
    }

    fn current_index(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.index)
    }

    /// Closes the current segment (synced) and starts the next one.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.flush_and_sync()?;
        let index = self.current_index() + 1;
        let path = segment_path(&self.dir, index);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.writer = BufWriter::new(file);
        self.segments.push(Segment { index, path });
        self.len = 0;
        Ok(())
    }

    /// Deletes segments before the one holding the last marker at or below
    /// `height - keep_heights`.
    fn prune(&mut self, height: Height) -> Result<(), WalError> {
        let Some(target) = height.checked_sub(self.opts.keep_heights) else {
            return Ok(());
        };
        let Some(keep_from) = self
            .markers
            .iter()
            .filter(|m| m.height <= target)
            .map(|m| m.segment)
            .max()
        else {
            return Ok(());
        };
        let current = self.current_index();
        let (old, kept): (Vec<_>, Vec<_>) = self
            .segments
            .drain(..)
            .partition(|s| s.index < keep_from && s.index != current);
        self.segments = kept;
        if old.is_empty() {
            return Ok(());
        }
        for s in &old {
            fs::remove_file(&s.path).map_err(io_err(&s.path))?;
        }
        self.markers.retain(|m| m.segment >= keep_from);
        sync_dir(&self.dir)
    }
}

fn truncate(path: &Path, len: u64) -> Result<(), WalError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_len(len).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// What [`repair`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The segment cut at the first damaged record, and the offset.
    pub truncated: Option<(PathBuf, u64)>,
    /// Later segments deleted because they followed the damage.
    pub removed: Vec<PathBuf>,
}

/// Cuts the log at its first damaged record, wherever it is, and deletes
/// every later segment (CometBFT's `--repair`-style recovery). Everything
/// after the damage is lost; run it only when [`Wal::open`] reported
/// [`WalError::Corrupt`] and the operator accepts that.
pub fn repair(dir: &Path) -> Result<Repair, WalError> {
    let segments = list_segments(dir)?;
    let mut result = Repair {
        truncated: None,
        removed: Vec::new(),
    };
    for seg in segments {
        if result.truncated.is_some() {
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            result.removed.push(seg.path);
            continue;
        }
        let s = scan(&seg.path)?;
        if let Some((offset, err)) = s.damage {
            tracing::warn!(
                path = %seg.path.display(),
                offset,
                reason = %err,
                "repairing the consensus WAL: truncating at the first damaged record"
            );
            truncate(&seg.path, offset)?;
            result.truncated = Some((seg.path, offset));
        }
    }
    sync_dir(dir)?;
    Ok(result)
}
