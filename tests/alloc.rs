//! The hot path allocates nothing: keep-alive requests to /plaintext, once the connection's
//! buffers exist, cause no per-request heap allocation anywhere in the process.
//!
//! One allocation remains outside Corral's code: when a read must *wait* with a timeout, may
//! boxes a node for its timer list (`may::timeout_list::TimeOutList::add_timer`). It happens
//! only on waits that actually block, so it shows as a small fraction per request here.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use common::TestServer;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends `REQUESTS_PER_BATCH` pipelined requests and reads all their responses.
fn batch_round_trip(stream: &mut std::net::TcpStream, batch: &[u8], buf: &mut [u8; 4096]) {
    stream.write_all(batch).expect("send");
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf[got..]).expect("read");
        assert!(n > 0, "closed");
        got += n;
        let answered = buf[..got]
            .windows(13)
            .filter(|w| *w == b"Hello, World!")
            .count();
        if answered == REQUESTS_PER_BATCH {
            return;
        }
    }
}

/// The counter is process-wide: the tests here take turns, so that one's server start is
/// not counted in the other's requests.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const REQUESTS_PER_BATCH: usize = 10;
const BATCHES: usize = 100;

#[test]
fn keep_alive_plaintext_requests_allocate_nothing() {
    let _turn = serial();
    let srv = TestServer::demo(|_| {});
    let mut client = srv.client();
    let batch = REQUEST.repeat(REQUESTS_PER_BATCH);
    let mut buf = [0u8; 4096];
    // Warm up: the connection's buffers, the Date cache, lazy statics.
    for _ in 0..20 {
        batch_round_trip(&mut client.stream, &batch, &mut buf);
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..BATCHES {
        batch_round_trip(&mut client.stream, &batch, &mut buf);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    let requests = BATCHES * REQUESTS_PER_BATCH;
    // The server waits for input about once per batch, and may boxes one timer node per wait;
    // any allocation per request would push this to `requests` or more.
    assert!(
        allocations as usize <= BATCHES + BATCHES / 5,
        "{allocations} allocations in {requests} pipelined keep-alive requests"
    );
}

/// One 4 KiB file from `StaticFiles`' cache: a hit shares the cached bytes (`Body::Shared`)
/// and allocates only its response's header list and the `ETag` and `Last-Modified` values
/// (3 allocations); a body copied per request would make it 4.
#[test]
fn a_static_file_from_the_cache_allocates_only_its_validator_headers() {
    const HITS_PER_BATCH: usize = 10;
    const HEAD_END: &[u8] = b"\r\n\r\n";
    let _turn = serial();
    let srv = TestServer::demo(|c| {
        c.demo.static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static").into();
    });
    let mut client = srv.client();
    let batch = b"GET /static/4k.txt HTTP/1.1\r\nHost: t\r\n\r\n".repeat(HITS_PER_BATCH);
    let mut buf = vec![0u8; 128 * 1024];
    let mut round_trip = |stream: &mut std::net::TcpStream| {
        stream.write_all(&batch).expect("send");
        let mut got = 0;
        // Every answer is a head and 4096 body bytes; the file has no blank line in it.
        loop {
            let n = stream.read(&mut buf[got..]).expect("read");
            assert!(n > 0, "closed");
            got += n;
            let heads = buf[..got].windows(4).filter(|w| *w == HEAD_END).count();
            if heads == HITS_PER_BATCH {
                let last = buf[..got]
                    .windows(4)
                    .rposition(|w| w == HEAD_END)
                    .expect("a head");
                if got - (last + 4) == 4096 {
                    return;
                }
            }
        }
    };
    // Warm up: the first request reads the file into the cache on the offload pool.
    for _ in 0..20 {
        round_trip(&mut client.stream);
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..BATCHES {
        round_trip(&mut client.stream);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    let requests = BATCHES * HITS_PER_BATCH;
    eprintln!("{allocations} allocations in {requests} cached static-file requests");
    // 3 per hit, plus may's timer node per wait (about one per batch), plus slack for a
    // revalidation (once a second: one trip to the offload pool).
    assert!(
        allocations as usize <= 3 * requests + BATCHES + BATCHES / 2,
        "{allocations} allocations in {requests} cached static-file requests"
    );
}
