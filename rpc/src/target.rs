//! Request targets as Go's net/http reads them.
//!
//! Go accepts any byte but controls and space in a request-target, so
//! `curl 'http://127.0.0.1:26657/abci_query?data="abcd"'` (the form
//! CometBFT's docs use) reaches CometBFT's handlers with the quotes as they
//! are. hyper refuses the same request line with 400: `http::Uri` rejects
//! `"`, `<`, `>` and `` ` ``, httparse rejects bytes that are not UTF-8, and
//! a `#` silently cuts the rest of the target off as a fragment, where Go
//! keeps it in the query. [`TargetEscaper`] sits on the bytes in front of
//! hyper and percent-encodes exactly those bytes inside each
//! request-target; percent-decoding turns them back into the bytes the
//! client sent, so the handlers see what CometBFT's would.
//!
//! It must never change a byte outside a request-target. It finds the
//! targets by following HTTP/1.1 framing as hyper does: the head is
//! measured by httparse (hyper's parser, same configuration), the body by
//! `Content-Length` (digits only, as hyper) or plain chunked coding. On
//! anything it cannot follow with certainty (trailers, chunk extensions,
//! other transfer codings, `Upgrade`, `CONNECT`, a head httparse refuses or
//! that grows past the header limit) it stops rewriting for the rest of the
//! connection. That is always safe: hyper then sees the client's own bytes,
//! and every such case is one where hyper either frames the message the
//! same way or fails the connection.

/// Most headers in one head; hyper's default, so a head both parsers
/// accept is measured identically.
const MAX_HEADERS: usize = 100;

/// Whether Go's server takes `b` literally in a request-target while hyper
/// refuses it or reads it differently: `"` `<` `>` `` ` `` (rejected by
/// `http::Uri`), `#` (read as the start of a fragment and dropped) and
/// every byte from 0x80 (httparse insists on UTF-8; encoding valid UTF-8
/// too changes nothing once decoded). Controls and space are refused by
/// both servers and left alone; `{ } | \ ^` are accepted by both.
pub(crate) fn needs_escape(b: u8) -> bool {
    matches!(b, b'"' | b'#' | b'<' | b'>' | b'`') || b >= 0x80
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Where the escaper is in the request stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Between messages: empty lines (CRLF or LF) may precede a request
    /// line, as httparse allows.
    Idle,
    /// Saw CR on an empty line; LF must follow.
    IdleCr,
    /// In the method, up to the first space.
    Method,
    /// In the request-target, up to the next space: the only bytes ever
    /// rewritten.
    Target,
    /// In the rest of the head, passed through; measured by httparse.
    Head,
    /// In a `Content-Length` body with this many bytes left.
    Body(u64),
    /// In a chunk-size line: the size so far and its number of hex digits.
    ChunkSize(u64, u8),
    /// After a chunk size's CR; LF must follow.
    ChunkSizeLf(u64),
    /// In chunk data with this many bytes left.
    ChunkData(u64),
    /// After chunk data; CR must follow.
    ChunkDataCr,
    /// After chunk data's CR; LF must follow.
    ChunkDataLf,
    /// After the last chunk's size line; an empty line (no trailers) must
    /// follow: CR ...
    EndCr,
    /// ... then LF.
    EndLf,
    /// Framing no longer followed: every byte passes unchanged.
    Transparent,
}

/// A streaming rewriter for one connection's request bytes (see the module
/// docs). Feed it the bytes in the order they arrive, split anywhere; the
/// output does not depend on how the input was split.
#[derive(Debug)]
pub(crate) struct TargetEscaper {
    state: State,
    /// The current head as hyper will see it (targets already escaped),
    /// from the method on; empty outside `Method`, `Target` and `Head`.
    head: Vec<u8>,
    /// A head longer than this is left to hyper (which refuses it).
    max_head: usize,
}

/// What httparse makes of the head collected so far.
enum HeadEnd {
    /// No empty line yet, so the head cannot be complete.
    NotYet,
    /// The head is `head[..len]`; the message continues in `next`.
    At(usize, State),
    /// A head httparse refuses (hyper will too) or cannot measure.
    Unknown,
}

impl TargetEscaper {
    /// An escaper for a new connection; heads longer than `max_head` bytes
    /// are passed through untouched from then on.
    pub(crate) fn new(max_head: usize) -> Self {
        TargetEscaper {
            state: State::Idle,
            head: Vec::new(),
            max_head,
        }
    }

    /// How many of the next input bytes are sure to pass through unchanged
    /// (body or chunk data, or everything once transparent), so a reader
    /// may hand them on without copying; see [`TargetEscaper::skip`].
    pub(crate) fn untouched_ahead(&self) -> u64 {
        match self.state {
            State::Transparent => u64::MAX,
            State::Body(n) | State::ChunkData(n) => n,
            _ => 0,
        }
    }

    /// Accounts for `n` bytes passed on unchanged;
    /// `n <= self.untouched_ahead()`.
    pub(crate) fn skip(&mut self, n: usize) {
        let n = n as u64;
        self.state = match self.state {
            State::Body(left) if n < left => State::Body(left - n),
            State::Body(_) => State::Idle,
            State::ChunkData(left) if n < left => State::ChunkData(left - n),
            State::ChunkData(_) => State::ChunkDataCr,
            other => other,
        };
    }

    /// Rewrites `input` onto `out`: the same bytes, except that bytes of a
    /// request-target for which [`needs_escape`] holds become `%XX`.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        while let Some(&b) = rest.first() {
            match self.state {
                State::Transparent => {
                    out.extend_from_slice(rest);
                    return;
                }
                State::Body(n) | State::ChunkData(n) => {
                    let take = rest.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    self.skip(take);
                    rest = &rest[take..];
                }
                State::Head => {
                    let before = self.head.len();
                    self.head.extend_from_slice(rest);
                    match self.head_end(before) {
                        HeadEnd::NotYet => {
                            out.extend_from_slice(rest);
                            rest = &[];
                            if self.head.len() > self.max_head {
                                self.become_transparent();
                            }
                        }
                        // The head can only end inside the bytes just
                        // added: an earlier end would have been found
                        // when those bytes came (`head_end` looks back
                        // far enough to see a terminator split across
                        // feeds). A head over the limit is hyper's to
                        // refuse.
                        HeadEnd::At(len, next) if len >= before && len <= self.max_head => {
                            let used = len - before;
                            out.extend_from_slice(&rest[..used]);
                            rest = &rest[used..];
                            self.head.clear();
                            if self.head.capacity() > 64 * 1024 {
                                self.head = Vec::new();
                            }
                            self.state = next;
                        }
                        HeadEnd::At(..) | HeadEnd::Unknown => self.become_transparent(),
                    }
                }
                State::Target if needs_escape(b) => {
                    let escaped = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
                    out.extend_from_slice(&escaped);
                    self.head.extend_from_slice(&escaped);
                    rest = &rest[1..];
                    self.check_head_size();
                }
                _ => {
                    out.push(b);
                    rest = &rest[1..];
                    self.step(b);
                }
            }
        }
    }

    /// One byte in a state that is followed byte by byte (everything but
    /// bodies, heads and escaped target bytes); `b` was already output.
    fn step(&mut self, b: u8) {
        self.state = match (self.state, b) {
            (State::Idle, b'\n') => State::Idle,
            (State::Idle, b'\r') => State::IdleCr,
            (State::IdleCr, b'\n') => State::Idle,
            (State::Idle, _) | (State::Method, _) => {
                self.head.push(b);
                match b {
                    b' ' => State::Target,
                    // A line break in the method: httparse refuses the
                    // head, which `Head` will find out.
                    b'\r' | b'\n' => State::Head,
                    _ => State::Method,
                }
            }
            (State::Target, _) => {
                self.head.push(b);
                match b {
                    b' ' | b'\r' | b'\n' => State::Head,
                    _ => State::Target,
                }
            }
            (State::ChunkSize(size, digits), _) if b.is_ascii_hexdigit() && digits < 16 => {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    _ => (b | 0x20) - b'a' + 10,
                };
                // 16 hex digits fit in a u64.
                State::ChunkSize(size << 4 | u64::from(digit), digits + 1)
            }
            (State::ChunkSize(size, digits), b'\r') if digits > 0 => State::ChunkSizeLf(size),
            (State::ChunkSizeLf(0), b'\n') => State::EndCr,
            (State::ChunkSizeLf(size), b'\n') => State::ChunkData(size),
            (State::ChunkDataCr, b'\r') => State::ChunkDataLf,
            (State::ChunkDataLf, b'\n') => State::ChunkSize(0, 0),
            (State::EndCr, b'\r') => State::EndLf,
            (State::EndLf, b'\n') => State::Idle,
            // Chunk extensions, whitespace, trailers, bare LFs, a lone CR
            // between messages: hyper either accepts these with rules we do
            // not follow or fails the connection; stop rewriting.
            _ => State::Transparent,
        };
        if self.state == State::Transparent {
            self.become_transparent();
        } else {
            self.check_head_size();
        }
    }

    fn check_head_size(&mut self) {
        if self.head.len() > self.max_head {
            self.become_transparent();
        }
    }

    fn become_transparent(&mut self) {
        self.state = State::Transparent;
        self.head = Vec::new();
    }

    /// Measures the head if it may be complete. `before` is how much of
    /// `self.head` was there before the latest bytes: only a terminator
    /// (LF followed by LF or CRLF) that reaches into those bytes can end
    /// the head, so httparse runs once per head, not once per read.
    fn head_end(&self, before: usize) -> HeadEnd {
        let from = before.saturating_sub(3);
        let tail = &self.head[from..];
        let terminated = tail
            .windows(2)
            .any(|w| w == b"\n\n" || (w[0] == b'\n' && w[1] == b'\r'));
        if !terminated {
            return HeadEnd::NotYet;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.head) {
            Ok(httparse::Status::Complete(len)) => HeadEnd::At(len, body_framing(&req)),
            // A head that is still partial after "\n\r" can only be
            // waiting for the "\n" of "\n\r\n"; any other partial result
            // after a terminator is something we do not understand.
            Ok(httparse::Status::Partial) if self.head.ends_with(b"\n\r") => HeadEnd::NotYet,
            Ok(httparse::Status::Partial) | Err(_) => HeadEnd::Unknown,
        }
    }
}

/// The state after a complete head: how its body is framed, by the same
/// rules as hyper's server (`Transfer-Encoding` over `Content-Length`,
/// lengths as plain digits, no body otherwise), restricted to the cases
/// where hyper goes on reading requests afterwards.
fn body_framing(req: &httparse::Request<'_, '_>) -> State {
    if req
        .method
        .is_some_and(|m| m.eq_ignore_ascii_case("CONNECT"))
    {
        return State::Transparent;
    }
    let mut length: Option<u64> = None;
    let mut codings = 0;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            // The connection may stop being HTTP after this message.
            return State::Transparent;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match digits(h.value) {
                Some(n) if length.is_none() || length == Some(n) => length = Some(n),
                // hyper refuses the request.
                _ => return State::Transparent,
            }
        }
    }
    match (codings, length) {
        (0, None | Some(0)) => State::Idle,
        (0, Some(n)) => State::Body(n),
        // Chunked needs HTTP/1.1 in hyper; with a Content-Length as well
        // hyper closes the connection after this message anyway.
        (1, None) if chunked && req.version == Some(1) => State::ChunkSize(0, 0),
        _ => State::Transparent,
    }
}

/// A `Content-Length` value as hyper reads it: ASCII digits only, no sign,
/// no spaces, no overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(escaper: &mut TargetEscaper, input: &[u8], splits: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = input;
        for &s in splits {
            let (now, later) = rest.split_at(s.min(rest.len()));
            escaper.feed(now, &mut out);
            rest = later;
        }
        escaper.feed(rest, &mut out);
        out
    }

    fn escape_all(input: &[u8]) -> Vec<u8> {
        run(&mut TargetEscaper::new(1 << 20), input, &[])
    }

    #[test]
    fn escapes_the_target_and_nothing_else() {
        let out = escape_all(
            b"GET /abci_query?data=\"k#1\"&x=<`\xc3\xa9> HTTP/1.1\r\nX-Q: \"v\"#<>\r\n\r\n",
        );
        assert_eq!(
            out,
            b"GET /abci_query?data=%22k%231%22&x=%3C%60%C3%A9%3E HTTP/1.1\r\nX-Q: \"v\"#<>\r\n\r\n"
        );
    }

    #[test]
    fn bodies_that_look_like_requests_pass_unchanged() {
        let body = b"GET /?a=\"b\" HTTP/1.1\r\n\r\n";
        let mut input = format!(
            "POST /\"x\" HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        input.extend_from_slice(b"5\r\nGET /\r\n11\r\n?\"a\" HTTP/1.1\r\n\r\n\r\n0\r\n\r\n");
        input.extend_from_slice(b"\r\nGET /?\"c\" HTTP/1.1\r\n\r\n");
        let out = escape_all(&input);
        let expected = String::from_utf8_lossy(&input)
            .replacen("/\"x\"", "/%22x%22", 1)
            .replacen("/?\"c\"", "/?%22c%22", 1);
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }

    #[test]
    fn stops_where_framing_is_not_followed() {
        for head in [
            "GET /\"a\" HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "CONNECT /\"a\" HTTP/1.1\r\n\r\n",
            "POST /\"a\" HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST /\"a\" HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST /\"a\" HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "GET /\"a\" HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            let mut input = head.as_bytes().to_vec();
            input.extend_from_slice(b"GET /\"b\" HTTP/1.1\r\n\r\n");
            let out = escape_all(&input);
            let expected = String::from_utf8_lossy(&input).replacen("/\"a\"", "/%22a%22", 1);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{head}");
        }
    }

    #[test]
    fn trailers_and_extensions_stop_rewriting() {
        for body in [
            "3;x=1\r\nabc\r\n0\r\n\r\n",
            "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        ] {
            let input = format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET /\"b\" HTTP/1.1\r\n\r\n"
            );
            assert_eq!(escape_all(input.as_bytes()), input.as_bytes(), "{body}");
        }
    }

    #[test]
    fn heads_past_the_limit_are_left_to_hyper() {
        let mut escaper = TargetEscaper::new(64);
        let input = format!(
            "GET /\"a\" HTTP/1.1\r\nX: {}\r\n\r\nGET /\"b\" HTTP/1.1\r\n\r\n",
            "y".repeat(100)
        );
        let out = run(&mut escaper, input.as_bytes(), &[]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            input.replacen("/\"a\"", "/%22a%22", 1)
        );
    }

    /// Percent-decodes strictly, as Go's unescape does: a bad escape fails.
    fn decode(s: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'%' {
                let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(s[i]);
                i += 1;
            }
        }
        Some(out)
    }

    /// One request as a client could send it.
    #[derive(Clone, Debug)]
    struct Msg {
        empty_lines: usize,
        method: &'static str,
        /// After the leading `/`: any byte Go accepts in a target.
        target: Vec<u8>,
        /// Header values may hold `"`, `#`, `<`: never rewritten.
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        /// `None`: Content-Length; `Some(sizes)`: chunked in these sizes.
        chunks: Option<Vec<usize>>,
        /// Makes the escaper stop following framing after this target.
        poison: Option<Poison>,
    }

    #[derive(Clone, Copy, Debug)]
    enum Poison {
        Upgrade,
        Trailer,
        Extension,
    }

    fn target_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(b"/?&=ab01%+\"#<>`{}|\\^'".to_vec()),
            1 => 0x21u8..=0x7e,
            1 => 0x80u8..=0xff,
        ]
    }

    fn body_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            Just(b"GET /?a=\"b\" HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            Just(b"0\r\n\r\n".to_vec()),
            Just(b"\r\n\r\nPOST /\"x\" HTTP/1.1\r\n".to_vec()),
        ]
    }

    fn msg() -> impl Strategy<Value = Msg> {
        (
            0usize..3,
            prop::sample::select(vec!["GET", "POST", "PUT"]),
            prop::collection::vec(target_byte(), 0..30),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["X-A", "Accept", "Content-Type"]),
                    "[a-z0-9 \"#<>`]{0,12}",
                ),
                0..3,
            ),
            prop::collection::vec(body_piece(), 0..4).prop_map(|p| p.concat()),
            prop::option::of(prop::collection::vec(1usize..20, 0..6)),
            prop::option::weighted(
                0.1,
                prop::sample::select(vec![Poison::Upgrade, Poison::Trailer, Poison::Extension]),
            ),
        )
            .prop_map(
                |(empty_lines, method, target, headers, body, chunks, poison)| Msg {
                    empty_lines,
                    method,
                    target,
                    headers,
                    body,
                    chunks,
                    poison,
                },
            )
    }

    /// The message's bytes with its target as sent (`raw`) and as the
    /// escaper must pass it on (`escaped`); where rewriting must stop (just
    /// after the target) when the message is poisoned.
    fn encode(m: &Msg) -> (Vec<u8>, Vec<u8>, Option<usize>) {
        let escaped_target = escape_target(&m.target);
        let build = |target: &[u8]| {
            let mut out = b"\r\n".repeat(m.empty_lines);
            out.extend_from_slice(m.method.as_bytes());
            out.extend_from_slice(b" /");
            out.extend_from_slice(target);
            let stop = out.len();
            out.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n");
            for (name, value) in &m.headers {
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            if matches!(m.poison, Some(Poison::Upgrade)) {
                out.extend_from_slice(b"Upgrade: websocket\r\n");
            }
            match &m.chunks {
                None => {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", m.body.len()).as_bytes(),
                    );
                    out.extend_from_slice(&m.body);
                }
                Some(sizes) => {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    let mut rest = &m.body[..];
                    let mut sizes = sizes.iter().cycle();
                    let mut first = true;
                    while !rest.is_empty() {
                        let n = sizes.next().copied().unwrap_or(7).min(rest.len());
                        let ext = if first && matches!(m.poison, Some(Poison::Extension)) {
                            ";e=1"
                        } else {
                            ""
                        };
                        first = false;
                        out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                        out.extend_from_slice(&rest[..n]);
                        out.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                    }
                    out.extend_from_slice(b"0\r\n");
                    if matches!(m.poison, Some(Poison::Trailer)) {
                        out.extend_from_slice(b"X-T: 1\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
            (out, stop)
        };
        let (raw, _) = build(&m.target);
        let (escaped, stop) = build(&escaped_target);
        // An extension on an empty body is never written; neither are
        // trailers on a Content-Length body.
        let poisoned = match m.poison {
            Some(Poison::Upgrade) => true,
            Some(Poison::Trailer) => m.chunks.is_some(),
            Some(Poison::Extension) => m.chunks.is_some() && !m.body.is_empty(),
            None => false,
        };
        (raw, escaped, poisoned.then_some(stop))
    }

    fn escape_target(target: &[u8]) -> Vec<u8> {
        target
            .iter()
            .flat_map(|&b| {
                if needs_escape(b) {
                    format!("%{b:02X}").into_bytes()
                } else {
                    vec![b]
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Pipelined requests with random bodies, split anywhere: the
        /// output is the input with each target escaped, and nothing else
        /// changed, up to a message the escaper cannot follow; from that
        /// target on, the bytes pass as they are. Each escaped target
        /// decodes to what the raw one decodes to and parses as an
        /// `http::Uri`, and each head parses with httparse.
        #[test]
        fn only_targets_change(
            msgs in prop::collection::vec(msg(), 1..6),
            splits in prop::collection::vec(0usize..64, 0..20),
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            let mut stopped = false;
            for m in &msgs {
                let (raw, escaped, poison_at) = encode(m);
                if stopped {
                    expected.extend_from_slice(&raw);
                } else if let Some(at) = poison_at {
                    let raw_at = at + raw.len() - escaped.len();
                    expected.extend_from_slice(&escaped[..at]);
                    expected.extend_from_slice(&raw[raw_at..]);
                    stopped = true;
                } else {
                    expected.extend_from_slice(&escaped);
                }
                input.extend_from_slice(&raw);

                let mut raw_target = b"/".to_vec();
                raw_target.extend_from_slice(&m.target);
                let escaped_target = escape_target(&raw_target);
                prop_assert_eq!(decode(&escaped_target), decode(&raw_target));
                prop_assert!(axum::http::Uri::try_from(&escaped_target[..]).is_ok());
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut req = httparse::Request::new(&mut headers);
                prop_assert!(matches!(req.parse(&escaped), Ok(httparse::Status::Complete(_))));
            }
            let mut escaper = TargetEscaper::new(1 << 20);
            prop_assert_eq!(run(&mut escaper, &input, &splits), expected);
        }
    }
}
