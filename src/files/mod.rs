//! Static files: [`StaticFiles`], a handler serving a directory, after nginx's static module
//! with `open_file_cache` and tower-http's `ServeDir`.
//!
//! **No scheduler waits on the disk.** A scheduler serves a request itself only from
//! memory; everything that touches the file system runs on the offload pool
//! (`corral::offload`), while the scheduler serves its other connections:
//!
//! 1. A file of at most [`StaticFiles::max_cached_file_bytes`] is held in memory, in a cache
//!    with one shard per scheduler (`cache.rs`) and a byte budget per shard
//!    ([`StaticFiles::cache_budget_bytes`]), least recently used out first. A hit is served
//!    on the scheduler with no system call but the socket write; its bytes are shared
//!    (`Body::Shared`), not copied, until the encoder writes them out.
//! 2. An entry is trusted for [`StaticFiles::revalidate_after`] (nginx's
//!    `open_file_cache_valid`). The first request after that looks at the file on the pool
//!    (open beneath the root, `fstat`) and compares device, inode, size and mtime; the other
//!    requests meanwhile are served the entry. A changed file is read anew, so an edit is
//!    served within one interval (plus one file-system timestamp tick: `open.rs`).
//! 3. A miss, and every request for a larger file, opens the file on the pool. A large file
//!    is streamed in pieces of `STREAM_CHUNK` bytes, each read on the pool: a connection
//!    holds one piece, whatever the file's size.
//!
//! **HTTP** (RFC 9110): `ETag` (nginx's `"mtime-length"` in hex, with the mtime's
//! nanoseconds) and `Last-Modified`; `If-Match`, `If-Unmodified-Since` (412),
//! `If-None-Match` (a list or `*`, weak comparison) and `If-Modified-Since` (only without
//! `If-None-Match`) giving 304, in RFC 9110 §13.2.2's order (`http::conditional`);
//! `Accept-Ranges: bytes` and one `Range` (`a-b`, `a-`, `-n`) giving 206 with
//! `Content-Range`, one past the end 416 with `Content-Range: bytes */len`, several ranges the
//! whole file (200), `If-Range` that does not hold the whole file (`http::range`). HEAD gets
//! the headers GET would. Methods other than GET and HEAD get 405. Content types by
//! extension (`mime.rs`).
//!
//! **Paths** (`path.rs`, `open.rs`): the route's `*wildcard` (or, on a route without one,
//! the request path) is percent-decoded and refused (404) unless every segment is a plain
//! name: no `..`, `.`, empty segment, NUL or backslash. The file is opened with
//! `openat2(RESOLVE_BENEATH)`, so the kernel refuses a symlink that leads out of the root
//! (404) and follows one that stays inside. A directory is answered with its index file
//! ([`StaticFiles::index_file`], default `index.html`) when the path ends in '/', else with
//! a 301 to the path with the '/' (as nginx does); a directory without one is 404, and so is
//! anything that is not a regular file. No directory listings.

mod cache;
mod headers;
mod mime;
mod open;
mod path;

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cache::{Cache, CachedFile, Lookup, coarse_now};
use headers::FileHeaders;
use open::{FileId, Probe};

use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::range::{self, RangeAnswer};
use crate::http::request::Request;
use crate::http::response::{Body, BodyWrite, Response};
use crate::http::status::Status;
use crate::router::Handler;
use crate::runtime::offload::offload;

/// Default [`StaticFiles::max_cached_file_bytes`]: most pages, styles and scripts fit.
const DEFAULT_MAX_CACHED_FILE: u64 = 256 * 1024;
/// Default [`StaticFiles::cache_budget_bytes`], per scheduler.
const DEFAULT_CACHE_BUDGET: usize = 8 * 1024 * 1024;
/// Default [`StaticFiles::revalidate_after`]: an edit shows within a second; nginx's
/// `open_file_cache_valid` defaults to 60 s.
const DEFAULT_REVALIDATE: Duration = Duration::from_secs(1);
/// Bytes read per trip to the offload pool when streaming a large file: what one
/// connection holds while it streams. A trip costs ~10 µs of task switches, so at 128 KiB
/// they are well under 1% of sending the piece over loopback.
const STREAM_CHUNK: usize = 128 * 1024;

/// A handler serving the files under a directory: register it on a `*wildcard` route.
///
/// ```no_run
/// use corral::{Config, Router, Server, StaticFiles};
///
/// let files = StaticFiles::new("public").revalidate_after(std::time::Duration::from_secs(5));
/// let app = Router::new().get("/static/*path", files);
/// Server::run(Config::embedded(), app)?;
/// # Ok::<(), corral::ServerError>(())
/// ```
///
/// `GET /static/css/site.css` serves `public/css/site.css`. On a route without a wildcard
/// (`.get("/favicon.ico", files)`) the request path names the file, relative to the root.
/// How it serves (caching, revalidation, conditional and range requests, path safety): the
/// module documentation, and docs/architecture.md, "Static files".
#[derive(Clone)]
pub struct StaticFiles {
    root: Arc<Path>,
    index: Option<Arc<str>>,
    max_cached_file: u64,
    budget: usize,
    revalidate: Duration,
    cache: Arc<Cache>,
}

impl StaticFiles {
    /// Serves the files under `root`. A root that is not a directory is logged at warn
    /// (every request then gets 404), not refused: it may appear later.
    pub fn new(root: impl Into<PathBuf>) -> StaticFiles {
        let root: PathBuf = root.into();
        if !root.is_dir() {
            log::warn!(
                "static files: {} is not a directory: its routes answer 404",
                root.display()
            );
        }
        StaticFiles {
            root: root.into(),
            index: Some("index.html".into()),
            max_cached_file: DEFAULT_MAX_CACHED_FILE,
            budget: DEFAULT_CACHE_BUDGET,
            revalidate: DEFAULT_REVALIDATE,
            cache: Arc::new(Cache::new(DEFAULT_CACHE_BUDGET, DEFAULT_REVALIDATE)),
        }
    }

    /// Files up to this size are held in memory and served from it (default 256 KiB);
    /// larger ones are streamed from the disk on every request. 0 holds none.
    pub fn max_cached_file_bytes(mut self, bytes: u64) -> Self {
        self.max_cached_file = bytes;
        self.rebuild_cache()
    }

    /// Bytes of files each scheduler holds in memory (default 8 MiB), least recently used
    /// out first: the cache holds at most this times the number of schedulers. 0 holds none.
    pub fn cache_budget_bytes(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self.rebuild_cache()
    }

    /// How long a file held in memory is served without looking at the disk (default 1 s).
    /// After that, the next request for it checks whether it changed (on the offload
    /// pool), and the others are served the held copy meanwhile. Zero checks on every
    /// request.
    pub fn revalidate_after(mut self, interval: Duration) -> Self {
        self.revalidate = interval;
        self.rebuild_cache()
    }

    /// The file a path ending in '/' serves from its directory (default `index.html`);
    /// `None` makes such paths 404.
    pub fn index_file(mut self, name: Option<&str>) -> Self {
        self.index = name.map(Arc::from);
        self
    }

    fn rebuild_cache(mut self) -> Self {
        self.cache = Arc::new(Cache::new(self.budget, self.revalidate));
        self
    }

    fn serve(&self, req: &Request<'_>) -> Response {
        let asked = Asked::of(req);
        if !asked.conditions.get_or_head {
            return Response::error(Status::METHOD_NOT_ALLOWED).with_header("Allow", "GET, HEAD");
        }
        let key = requested_path(req);
        let now = coarse_now();
        let known = match self.cache.lookup(req.scheduler(), key, now) {
            Lookup::Fresh(file) => return answer_cached(&file, &asked),
            Lookup::Stale(file) => Some(file),
            Lookup::Miss => None,
        };
        let Some(relative) = path::beneath_root(key, self.index.as_deref()) else {
            return Response::error(Status::NOT_FOUND);
        };
        let (root, rel) = (self.root.clone(), relative.clone());
        let (known_id, max_small) = (known.as_ref().map(|file| file.id), self.max_cached_file);
        let probe = offload(move || open::probe(&root, &rel, known_id, max_small));
        // Coming back from the pool, this may run on another worker: the cache's shard
        // is still the request's scheduler's (the lock makes that safe: `cache.rs`).
        let scheduler = req.scheduler();
        match (probe, known) {
            (Probe::Unchanged, Some(file)) => answer_cached(&file, &asked),
            (
                Probe::Small {
                    bytes,
                    id: Some(id),
                },
                _,
            ) => {
                let file = Arc::new(cached_file(bytes, id, content_type_of(&relative)));
                self.cache
                    .insert(scheduler, key, file.clone(), coarse_now());
                answer_cached(&file, &asked)
            }
            (probe, _) => {
                self.cache.remove(scheduler, key);
                answer_uncached(probe, &relative, req, &asked)
            }
        }
    }
}

impl Handler for StaticFiles {
    fn call(&self, req: &Request<'_>) -> Response {
        self.serve(req)
    }
}

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticFiles")
            .field("root", &self.root)
            .field("index", &self.index)
            .field("max_cached_file", &self.max_cached_file)
            .field("budget", &self.budget)
            .field("revalidate", &self.revalidate)
            .finish_non_exhaustive()
    }
}

/// The path the request names beneath the root, raw: the route's trailing `*wildcard`, or
/// the whole path on a route without one (and for a fallback).
fn requested_path<'a>(req: &Request<'a>) -> &'a str {
    // The last segment by a byte loop: `rsplit('/')` cost ~150 instructions a request
    // (a `memrchr` call and its set-up for a dozen bytes).
    let last_segment = |pattern: &'a str| {
        let slash = pattern.bytes().rposition(|b| b == b'/');
        &pattern[slash.map_or(0, |at| at + 1)..]
    };
    let wildcard = req
        .route()
        .map(last_segment)
        .and_then(|last| last.strip_prefix('*'));
    match wildcard.and_then(|name| req.param(name)) {
        Some(value) => value,
        None => req.path().trim_start_matches('/'),
    }
}

/// The request's method and the fields that decide what of a file it gets, in one pass over
/// its headers. A list field sent on several lines (`If-None-Match`) counts its first line.
#[derive(Default)]
struct Asked<'a> {
    conditions: Conditions<'a>,
    range: Option<&'a str>,
    if_range: Option<&'a str>,
}

impl<'a> Asked<'a> {
    fn of(req: &Request<'a>) -> Asked<'a> {
        let mut asked = Asked::default();
        asked.conditions.get_or_head = matches!(req.method(), "GET" | "HEAD");
        for (name, value) in req.headers() {
            if !name.starts_with(['i', 'I', 'r', 'R']) {
                continue;
            }
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            let c = &mut asked.conditions;
            let slots = [
                ("if-match", &mut c.if_match),
                ("if-none-match", &mut c.if_none_match),
                ("if-modified-since", &mut c.if_modified_since),
                ("if-unmodified-since", &mut c.if_unmodified_since),
                ("range", &mut asked.range),
                ("if-range", &mut asked.if_range),
            ];
            if let Some((_, slot)) = slots
                .into_iter()
                .find(|(field, _)| name.eq_ignore_ascii_case(field))
            {
                slot.get_or_insert(value);
            }
        }
        asked
    }
}

fn content_type_of(relative: &Path) -> &'static str {
    let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    mime::content_type(name)
}

fn cached_file(bytes: Vec<u8>, id: FileId, content_type: &'static str) -> CachedFile {
    let validators = Validators::for_file(id.modified, id.len);
    CachedFile {
        bytes: bytes.into(),
        id,
        headers: FileHeaders::new(&validators),
        validators,
        content_type,
    }
}

/// A file held in memory, or just read whole with stable validators.
fn answer_cached(file: &CachedFile, asked: &Asked<'_>) -> Response {
    let len = file.bytes.len() as u64;
    answer(
        &file.validators,
        &file.headers,
        file.content_type,
        len,
        asked,
        |part| match part {
            None => Body::Shared(file.bytes.clone()),
            Some((start, end)) => Body::Bytes(file.bytes[start as usize..=end as usize].to_vec()),
        },
    )
}

/// What the pool found that is not a file held in memory.
fn answer_uncached(
    probe: Probe,
    relative: &Path,
    req: &Request<'_>,
    asked: &Asked<'_>,
) -> Response {
    match probe {
        Probe::Large { file, id } => {
            let validators = Validators::for_file(id.modified, id.len);
            let headers = FileHeaders::new(&validators);
            let content_type = content_type_of(relative);
            answer(&validators, &headers, content_type, id.len, asked, |part| {
                // A large file is never empty: it is larger than the cache's limit.
                let (start, end) = part.unwrap_or((0, id.len.saturating_sub(1)));
                let len = end + 1 - start;
                Body::SizedStream {
                    len,
                    stream: Box::new(move |out| stream_file(file, start, len, out)),
                }
            })
        }
        // Changed while it was read: these bytes, but nothing to validate them by.
        Probe::Small { bytes, .. } => Response::bytes(content_type_of(relative), bytes),
        Probe::Directory => redirect_to_directory(req),
        Probe::NotFound | Probe::Unchanged => Response::error(Status::NOT_FOUND),
        Probe::Forbidden => Response::error(Status::FORBIDDEN),
        Probe::Failed => Response::error(Status::INTERNAL_SERVER_ERROR),
    }
}

/// nginx's answer for a directory named without its '/': 301 to the same path with it.
fn redirect_to_directory(req: &Request<'_>) -> Response {
    let mut location = String::with_capacity(req.path().len() + 1);
    location.push_str(req.path());
    location.push('/');
    if let Some(query) = req.query() {
        location.push('?');
        location.push_str(query);
    }
    match Response::error(Status::MOVED_PERMANENTLY).try_with_header("Location", location) {
        Ok(response) => response,
        Err(_) => Response::error(Status::NOT_FOUND),
    }
}

/// The answer for one representation: 304/412 from the preconditions, else 200, 206 or 416
/// from the range. `body` makes the body of all (`None`) or of bytes `start..=end`.
fn answer(
    validators: &Validators,
    headers: &FileHeaders,
    content_type: &'static str,
    len: u64,
    asked: &Asked<'_>,
    body: impl FnOnce(Option<(u64, u64)>) -> Body,
) -> Response {
    match conditional::evaluate(&asked.conditions, validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return headers.not_modified(Response::new(Status::NOT_MODIFIED));
        }
        Precondition::Failed => return Response::error(Status::PRECONDITION_FAILED),
    }
    let (status, part) = match range::answer(asked.range, asked.if_range, validators, len) {
        RangeAnswer::Full => (Status::OK, None),
        RangeAnswer::Partial { start, end } => (Status::PARTIAL_CONTENT, Some((start, end))),
        RangeAnswer::Unsatisfiable => {
            let mut response = Response::error(Status::RANGE_NOT_SATISFIABLE);
            let range = format!("bytes */{len}");
            response
                .headers
                .push((Cow::Borrowed("Content-Range"), Cow::Owned(range)));
            return response;
        }
    };
    let mut response = headers.full(
        Response::new(status)
            .with_content_type(content_type)
            .with_body(body(part)),
    );
    if let Some((start, end)) = part {
        let range = format!("bytes {start}-{end}/{len}");
        response
            .headers
            .push((Cow::Borrowed("Content-Range"), Cow::Owned(range)));
    }
    response
}

/// Writes `len` bytes of `file` from `start`, a piece at a time, each piece read on the
/// offload pool. The buffer goes to the pool and back, so it is allocated once.
fn stream_file(file: File, start: u64, len: u64, out: &mut dyn BodyWrite) -> io::Result<()> {
    let file = Arc::new(file);
    let mut buf = vec![0u8; STREAM_CHUNK.min(len as usize)];
    let end = start + len;
    let mut at = start;
    while at < end {
        let want = (end - at).min(buf.len() as u64) as usize;
        let reader = file.clone();
        let (back, read) = offload(move || {
            let read = open::read_at(&reader, &mut buf[..want], at);
            (buf, read)
        });
        buf = back;
        let n = read?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was sent",
            ));
        }
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}
