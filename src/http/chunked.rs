//! Strict decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! Shape after hyper `src/proto/h1/decode.rs`: a [`ChunkState`] enum with one small fn per
//! state. Framing bytes (size lines, CRLFs, trailers) are stepped through one at a time; chunk
//! data is copied in bulk. Extensions and trailers are validated and dropped, so the decoder owns
//! no heap memory and stays a few words in size whatever a client sends. It never reads past the
//! final CRLF, so pipelined bytes stay with the caller.
//!
//! Anything outside this grammar is an error, never a guess: a parser more lenient than the proxy
//! in front of it is how requests get smuggled.
//!
//! ```text
//! chunked-body    = *chunk last-chunk trailer-section CRLF
//! chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size      = 1*HEXDIG                    ; no sign, no "0x", no spaces, fits u64
//! last-chunk      = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext       = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
//! ext-name        = token ;  ext-val = token / quoted-string ;  BWS = *( SP / HTAB )
//! trailer-section = *( field-name ":" OWS field-value OWS CRLF )
//! ```

/// Most chunk-extension bytes accepted over one whole body, summed across chunks (hyper's
/// `CHUNKED_EXTENSIONS_LIMIT`). Extensions carry no data: without a total, a client could wrap
/// a one-byte body in gigabytes of them, one line-limit at a time.
const MAX_EXTENSION_BYTES: u64 = 16 * 1024;

/// Most trailer fields accepted. They are dropped after validation, so this bounds only how long
/// a client can keep the body open with them; 64 is far above anything legitimate.
const MAX_TRAILER_FIELDS: u32 = 64;

/// Why a chunked body was rejected. `TooLarge` maps to 413, everything else to 400 (the caller
/// maps). Messages carry no client input, so they are safe to send back.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    #[error("chunk size must be one or more hexadecimal digits")]
    BadSize,
    #[error("chunk size does not fit in 64 bits")]
    SizeOverflow,
    #[error("malformed chunk extension")]
    BadExtension,
    #[error("chunk extensions too long in total")]
    ExtensionsTooLong,
    #[error("line not terminated by CRLF")]
    BadLineEnding,
    #[error("chunk data not followed by CRLF")]
    BadDataEnd,
    #[error("malformed trailer field")]
    BadTrailer,
    #[error("too many trailer fields")]
    TooManyTrailers,
    #[error("chunk-size or trailer line too long")]
    LineTooLong,
    #[error("chunked body larger than the limit")]
    TooLarge,
}

use ChunkedError as E;

/// Where the decoder is in the body; each variant names what the next byte must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// First byte of a chunk-size line: a hex digit.
    SizeStart,
    /// More hex digits, or what ends the size: CR, `;` or BWS.
    Size,
    /// Inside the extensions of a chunk-size line.
    Ext(Ext),
    /// The LF of a chunk-size line.
    SizeLf,
    /// `size` bytes of data still to copy.
    Data,
    DataCr,
    DataLf,
    /// First byte of a trailer line, or the CR of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    Done,
    /// Sticky: a decoder that failed keeps failing the same way.
    Failed(ChunkedError),
}

/// Sub-states of `chunk-ext`; see [`ext_next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// After `;`: BWS, then a name.
    BeforeName,
    Name,
    /// BWS after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: BWS, then a token or a quoted-string.
    BeforeValue,
    Token,
    Quoted,
    /// After a backslash inside a quoted-string.
    QuotedPair,
    /// Just after a closing quote.
    AfterQuoted,
    /// BWS after a size or a value: only more BWS or `;` may follow, not CR.
    Lws,
}

/// Incremental decoder: feed it whatever bytes have arrived; it keeps state across calls.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Size of the current chunk while its line is read, then the data bytes still to copy.
    size: u64,
    /// Sum of the declared chunk sizes so far (checked against `max_body` before any copy).
    body_len: u64,
    /// Content bytes of the current size or trailer line, CRLF excluded.
    line_len: usize,
    ext_bytes: u64,
    trailers: u32,
    max_line: usize,
    max_body: u64,
}

impl ChunkedDecoder {
    /// `max_line_bytes` bounds one chunk-size line (with extensions) and one trailer line,
    /// CRLF excluded; `max_body_bytes` bounds the decoded body.
    pub fn new(max_line_bytes: usize, max_body_bytes: u64) -> Self {
        Self {
            state: ChunkState::SizeStart,
            size: 0,
            body_len: 0,
            line_len: 0,
            ext_bytes: 0,
            trailers: 0,
            max_line: max_line_bytes,
            max_body: max_body_bytes,
        }
    }

    /// Decodes from `input`, appending chunk data to `out`. Returns how many bytes of `input`
    /// were consumed and whether the body, trailers and final CRLF included, is complete. When
    /// complete, bytes after the consumed count belong to the next request (pipelining) and are
    /// not consumed. Until complete, all of `input` is consumed.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), ChunkedError> {
        let mut used = 0;
        loop {
            match self.state {
                ChunkState::Done => return Ok((used, true)),
                ChunkState::Failed(e) => return Err(e),
                _ => {}
            }
            let rest = &input[used..];
            let Some(&byte) = rest.first() else {
                return Ok((used, false));
            };
            if self.state == ChunkState::Data {
                used += self.read_data(rest, out);
                continue;
            }
            match self.step(byte) {
                Ok(next) => self.state = next,
                Err(e) => {
                    self.state = ChunkState::Failed(e);
                    return Err(e);
                }
            }
            used += 1;
        }
    }

    /// One framing byte: the state after it.
    fn step(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        if self.in_line() {
            self.count_line_byte(b)?;
        }
        match self.state {
            ChunkState::SizeStart => self.read_size_start(b),
            ChunkState::Size => self.read_size(b),
            ChunkState::Ext(ext) => read_ext(ext, b),
            ChunkState::SizeLf => self.read_size_lf(b),
            ChunkState::DataCr => read_data_cr(b),
            ChunkState::DataLf => read_data_lf(b),
            ChunkState::TrailerStart => self.read_trailer_start(b),
            ChunkState::TrailerName => read_trailer_name(b),
            ChunkState::TrailerValue => read_trailer_value(b),
            ChunkState::TrailerLf => self.read_trailer_lf(b),
            ChunkState::EndLf => read_end_lf(b),
            // `decode` handles these without calling `step`.
            ChunkState::Data | ChunkState::Done | ChunkState::Failed(_) => Ok(self.state),
        }
    }

    fn in_line(&self) -> bool {
        matches!(
            self.state,
            ChunkState::SizeStart
                | ChunkState::Size
                | ChunkState::Ext(_)
                | ChunkState::TrailerStart
                | ChunkState::TrailerName
                | ChunkState::TrailerValue
        )
    }

    /// Line-wide rules, checked before the state's own: a bare LF never ends a line, and the
    /// line (and all extensions together) stay within their limits.
    fn count_line_byte(&mut self, b: u8) -> Result<(), ChunkedError> {
        match b {
            b'\n' => return Err(E::BadLineEnding),
            b'\r' => return Ok(()),
            _ => {}
        }
        self.line_len += 1;
        if self.line_len > self.max_line {
            return Err(E::LineTooLong);
        }
        if let ChunkState::Ext(_) = self.state {
            self.ext_bytes += 1;
            if self.ext_bytes > MAX_EXTENSION_BYTES {
                return Err(E::ExtensionsTooLong);
            }
        }
        Ok(())
    }

    fn read_size_start(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        // An empty size, a sign, a space or anything else non-hex is refused here.
        let digit = hex_value(b).ok_or(E::BadSize)?;
        self.size = u64::from(digit);
        Ok(ChunkState::Size)
    }

    fn read_size(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        if let Some(digit) = hex_value(b) {
            self.size = self
                .size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(digit)))
                .ok_or(E::SizeOverflow)?;
            return Ok(ChunkState::Size);
        }
        let next = match b {
            b'\r' => ChunkState::SizeLf,
            b';' => ChunkState::Ext(Ext::BeforeName),
            b' ' | b'\t' => ChunkState::Ext(Ext::Lws),
            _ => return Err(E::BadSize), // `0x5`, `5z`, ...
        };
        self.declare_size()?;
        Ok(next)
    }

    /// The size is final: refuse it now if it would take the body over the limit, before a
    /// single data byte is read.
    fn declare_size(&mut self) -> Result<(), ChunkedError> {
        self.body_len = self
            .body_len
            .checked_add(self.size)
            .filter(|&total| total <= self.max_body)
            .ok_or(E::TooLarge)?;
        Ok(())
    }

    fn read_size_lf(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        if b != b'\n' {
            return Err(E::BadLineEnding);
        }
        self.line_len = 0;
        Ok(if self.size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        })
    }

    /// Copies as much of the current chunk as `input` holds; returns the bytes taken.
    fn read_data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = usize::try_from(self.size).map_or(input.len(), |size| size.min(input.len()));
        out.extend_from_slice(&input[..n]);
        self.size -= n as u64;
        if self.size == 0 {
            self.state = ChunkState::DataCr;
        }
        n
    }

    fn read_trailer_start(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        if b == b'\r' {
            return Ok(ChunkState::EndLf);
        }
        // A leading space would be obs-fold, a leading ':' an empty name: both refused.
        if !is_tchar(b) {
            return Err(E::BadTrailer);
        }
        self.trailers += 1;
        if self.trailers > MAX_TRAILER_FIELDS {
            return Err(E::TooManyTrailers);
        }
        Ok(ChunkState::TrailerName)
    }

    fn read_trailer_lf(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        if b != b'\n' {
            return Err(E::BadLineEnding);
        }
        self.line_len = 0;
        Ok(ChunkState::TrailerStart)
    }
}

fn read_ext(ext: Ext, b: u8) -> Result<ChunkState, ChunkedError> {
    Ok(match ext_next(ext, b)? {
        Some(ext) => ChunkState::Ext(ext),
        None => ChunkState::SizeLf,
    })
}

/// One byte of `chunk-ext`: the next sub-state, or `None` when a CR legitimately ends the line
/// (after a name or a value, not after `;`, `=` or BWS).
fn ext_next(ext: Ext, b: u8) -> Result<Option<Ext>, ChunkedError> {
    use Ext::*;
    let next = match (ext, b) {
        (BeforeName | AfterName | BeforeValue | Lws, b' ' | b'\t') => ext,
        (Name, b' ' | b'\t') => AfterName,
        (Token | AfterQuoted, b' ' | b'\t') => Lws,
        (Name | AfterName | Token | AfterQuoted | Lws, b';') => BeforeName,
        (Name | AfterName, b'=') => BeforeValue,
        (BeforeName | Name, t) if is_tchar(t) => Name,
        (BeforeValue | Token, t) if is_tchar(t) => Token,
        (BeforeValue, b'"') => Quoted,
        (Quoted, b'"') => AfterQuoted,
        (Quoted, b'\\') => QuotedPair,
        (Quoted, q) if is_qdtext(q) => Quoted,
        (QuotedPair, q) if q == b'\t' || q == b' ' || is_vchar_or_obs(q) => Quoted,
        (Name | Token | AfterQuoted, b'\r') => return Ok(None),
        _ => return Err(E::BadExtension),
    };
    Ok(Some(next))
}

fn read_data_cr(b: u8) -> Result<ChunkState, ChunkedError> {
    match b {
        b'\r' => Ok(ChunkState::DataLf),
        b'\n' => Err(E::BadLineEnding),
        // The chunk is longer than its size said.
        _ => Err(E::BadDataEnd),
    }
}

fn read_data_lf(b: u8) -> Result<ChunkState, ChunkedError> {
    match b {
        b'\n' => Ok(ChunkState::SizeStart),
        _ => Err(E::BadLineEnding),
    }
}

fn read_trailer_name(b: u8) -> Result<ChunkState, ChunkedError> {
    match b {
        b':' => Ok(ChunkState::TrailerValue),
        t if is_tchar(t) => Ok(ChunkState::TrailerName),
        _ => Err(E::BadTrailer), // includes CR: a field line needs its ':'
    }
}

/// OWS, field-vchars and obs-text in any order: the field-value grammar minus where spaces may
/// sit, which matters only to a reader of the value, and we drop it.
fn read_trailer_value(b: u8) -> Result<ChunkState, ChunkedError> {
    match b {
        b'\r' => Ok(ChunkState::TrailerLf),
        b'\t' | b' ' => Ok(ChunkState::TrailerValue),
        v if is_vchar_or_obs(v) => Ok(ChunkState::TrailerValue),
        _ => Err(E::BadTrailer), // CTLs and DEL
    }
}

fn read_end_lf(b: u8) -> Result<ChunkState, ChunkedError> {
    match b {
        b'\n' => Ok(ChunkState::Done),
        _ => Err(E::BadLineEnding),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.6.4 `qdtext`: HTAB, SP and VCHAR/obs-text except `"` and `\`.
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || b == b' ' || (is_vchar_or_obs(b) && b != b'"' && b != b'\\')
}

fn is_vchar_or_obs(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0x80..=0xff)
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
