//! The broker link: topics shared by several Corral processes through Redis
//! (`pubsub.broker = "redis://HOST:PORT"`).
//!
//! Every publish, on whichever instance, goes to Redis as one Lua script that gives it an id
//! from one counter, keeps it in the topic's backlog (for `Last-Event-ID`) and in a log of
//! recent events (for catching up after a lost link), and `PUBLISH`es it. Every instance
//! listens on the pattern `corral:topic:*` and hands each event, with Redis's id, to its own
//! topic process, which wakes its waiters as for a local publish. So the ids are the
//! broker's, the same on every instance, and a stream resumed on another instance continues
//! where it stopped.
//!
//! The link is a process (`run_link`) supervised beside the topic process. Redis I/O never
//! runs on a scheduler: the link owns two OS threads, one for commands (publish, backlog),
//! fed through a may channel, and one on the subscription. When Redis goes away, waiters stay
//! where they are (they belong to the topic process); publishes fail at once with the reason
//! (503), and both threads reconnect with back-off. On reconnecting, the subscriber replays
//! from the log every event after the last one it delivered, so an event published through
//! another instance while this one's subscription was down still reaches its waiters.
//!
//! Ids come from `corral:seq`, seeded from Redis's clock in microseconds when the key is
//! missing (a new or emptied Redis), so they keep increasing across a Redis restart that lost
//! its data, as long as fewer than one event per microsecond was published on average.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use corral_actors::{Addr, ChildSpec, Ctx, ReplyTo, Spawn};
use may::sync::mpsc;

/// The channel prefix of every topic; the subscription's pattern is this and `*`.
const CHANNEL_PREFIX: &str = "corral:topic:";
/// The counter every event id comes from.
const SEQ_KEY: &str = "corral:seq";
/// A topic's recent events, `id SP data`, for `Last-Event-ID`.
const BACKLOG_PREFIX: &str = "corral:backlog:";
/// Recent events of every topic, scored by id, for a subscriber catching up after a lost link.
const LOG_KEY: &str = "corral:log";
/// Events kept in [`LOG_KEY`]: an outage during which more were published loses the oldest.
const LOG_LEN: usize = 4096;
/// Connecting, and each command, at most; a Redis that takes longer counts as unreachable.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a handler waits for the link's answer: a connect and a command, with room.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the subscriber thread looks up from the socket to see whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// Reconnect back-off: the first wait, doubled after each failure up to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The publish, atomic in Redis: id, backlog, log, then the `PUBLISH` (so the order in which
/// subscribers receive events is the order of their ids). `TIME` seeds a missing counter;
/// the id travels as the counter's text (Lua numbers would print 16 digits as `1.7e+15`).
/// KEYS: counter, topic backlog, log, channel. ARGV: data, backlog length, log length, topic.
const PUBLISH_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], t[1] .. string.rep('0', 6 - #t[2]) .. t[2])
end
redis.call('INCR', KEYS[1])
local id = redis.call('GET', KEYS[1])
local entry = id .. ' ' .. ARGV[1]
redis.call('RPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('ZADD', KEYS[3], id, id .. ' ' .. #ARGV[4] .. ' ' .. ARGV[4] .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[3]) - 1)
return {id, redis.call('PUBLISH', KEYS[4], entry)}
";

/// A topic's kept events as `(id, data)`, oldest first.
pub type Backlog = Vec<(u64, Arc<[u8]>)>;

/// An event as the broker hands it over: its topic, id and data.
pub type Deliver = Arc<dyn Fn(String, u64, Arc<[u8]>) + Send + Sync>;

/// What a publish through the broker did.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// The event's id (the same on every instance).
    pub id: u64,
    /// Corral instances subscribed when it went out (each wakes its own waiters).
    pub instances: u64,
}

/// Why the broker could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// No connection to Redis now; the link keeps trying.
    #[error(
        "the pub/sub broker {url} is unreachable ({reason}); waiters are kept, \
         publishing works again once it is back"
    )]
    Unreachable { url: String, reason: String },
    /// Redis answered with an error.
    #[error("the pub/sub broker {url} refused: {reason}")]
    Refused { url: String, reason: String },
    /// The link process is not there (restarting).
    #[error("the pub/sub broker link is restarting, try again")]
    Restarting,
    /// Redis (or the link) did not answer in time.
    #[error("the pub/sub broker {url} did not answer within 3 s; try again")]
    Slow { url: String },
}

/// The link's configuration, and how a handler reaches it.
pub struct Broker {
    url: String,
    /// The link process's registered name.
    name: String,
    backlog_len: usize,
    deliver: Deliver,
}

/// Messages of the link process.
pub enum LinkMsg {
    /// Work for Redis, passed on to the command thread.
    Command(Command),
    /// Whether Redis answers now, from one of the threads (`None`: up).
    State {
        thread: &'static str,
        down: Option<String>,
    },
    /// A thread of the link ended although the link still runs: a bug, so the link dies
    /// and its supervisor starts it afresh.
    ThreadEnded(&'static str),
    /// Whether Redis answers, for `/metrics`.
    Up(ReplyTo<bool>),
    /// Answered once the subscriber's first attempt is over (subscribed, or failed).
    Ready(ReplyTo<()>),
}

impl Broker {
    /// A link to the Redis at `url` (already validated by the config), registered as
    /// `name`; every event received goes to `deliver`.
    pub fn new(url: &str, name: String, backlog_len: usize, deliver: Deliver) -> Broker {
        Broker {
            url: url.to_string(),
            name,
            backlog_len,
            deliver,
        }
    }

    /// The child spec of the link process, for the pub/sub supervisor.
    pub fn child_spec(&self) -> ChildSpec {
        let (url, name, deliver) = (self.url.clone(), self.name.clone(), self.deliver.clone());
        let backlog_len = self.backlog_len;
        ChildSpec::new("broker", move || {
            let (url, deliver) = (url.clone(), deliver.clone());
            Spawn::new()
                .register(name.clone())
                .try_spawn(move |ctx| run_link(ctx, &url, backlog_len, deliver))
        })
    }

    fn call_failed(&self, err: corral_actors::CallError) -> BrokerError {
        match err {
            corral_actors::CallError::Timeout => BrokerError::Slow {
                url: self.url.clone(),
            },
            _ => BrokerError::Restarting,
        }
    }

    fn link(&self) -> Result<Addr<LinkMsg>, BrokerError> {
        corral_actors::whereis::<LinkMsg>(&self.name).ok_or(BrokerError::Restarting)
    }

    /// Publishes `data` on `topic` through Redis (parks the calling coroutine only).
    pub fn publish(&self, topic: &str, data: Arc<[u8]>) -> Result<Published, BrokerError> {
        let topic = topic.to_string();
        self.link()?
            .call(
                |reply| LinkMsg::Command(Command::Publish { topic, data, reply }),
                CALL_TIMEOUT,
            )
            .map_err(|err| self.call_failed(err))?
    }

    /// The events of `topic` after `after` that Redis still keeps, oldest first.
    pub fn backlog(&self, topic: &str, after: u64) -> Result<Backlog, BrokerError> {
        let topic = topic.to_string();
        self.link()?
            .call(
                |reply| {
                    LinkMsg::Command(Command::Backlog {
                        topic,
                        after,
                        reply,
                    })
                },
                CALL_TIMEOUT,
            )
            .map_err(|err| self.call_failed(err))?
    }

    /// Waits (parking the coroutine) until the link's first subscription attempt is over, so
    /// that waiters who subscribe after the start do not miss an event published before
    /// this instance listened. Bounded: a Redis that does not answer counts as down.
    pub fn wait_ready(&self) {
        if let Ok(link) = self.link() {
            let _ = link.call(LinkMsg::Ready, CALL_TIMEOUT);
        }
    }

    /// Whether the link has Redis now; `None` if the link does not answer.
    pub fn up(&self) -> Option<bool> {
        self.link().ok()?.call(LinkMsg::Up, IO_TIMEOUT).ok()
    }
}

/// What the command thread is asked to do.
pub enum Command {
    Publish {
        topic: String,
        data: Arc<[u8]>,
        reply: ReplyTo<Result<Published, BrokerError>>,
    },
    /// The topic's backlog after event `after`, oldest first.
    Backlog {
        topic: String,
        after: u64,
        reply: ReplyTo<Result<Backlog, BrokerError>>,
    },
}

impl Command {
    fn fail(self, err: BrokerError) {
        match self {
            Command::Publish { reply, .. } => drop(reply.send(Err(err))),
            Command::Backlog { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

/// Sets the flag when the link process ends however it ends, so its threads stop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Tells the link when a thread ends while the link still wants it.
struct EndedNotice {
    link: Addr<LinkMsg>,
    thread: &'static str,
    stop: Arc<AtomicBool>,
}

impl Drop for EndedNotice {
    fn drop(&mut self) {
        if !self.stop.load(Ordering::Acquire) {
            let _ = self.link.try_send(LinkMsg::ThreadEnded(self.thread));
        }
    }
}

/// The link process: owns the two Redis threads, hands commands to one, and knows whether
/// Redis answers.
fn run_link(mut ctx: Ctx<LinkMsg>, url: &str, backlog_len: usize, deliver: Deliver) {
    // The URL passed config validation; a client that still refuses it is reported on
    // every publish rather than crashing the link in a restart loop.
    let client = redis::Client::open(url).map_err(|e| e.to_string());
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let (commands, requests) = mpsc::channel::<Command>();
    let mut down: [Option<String>; 2] = [
        Some("not connected yet".into()),
        Some("not connected yet".into()),
    ];
    if let Ok(client) = &client {
        let me = ctx.addr();
        let (c, u, link) = (client.clone(), url.to_string(), me.clone());
        start_thread("commands", &stop, &me, move || {
            command_thread(&c, &u, backlog_len, &requests, &link);
        });
        let (c, flag, link) = (client.clone(), stop.0.clone(), me.clone());
        start_thread("subscriber", &stop, &me, move || {
            subscriber_thread(&c, &deliver, &flag, &link);
        });
    }
    let mut tried = false; // the subscriber's first attempt is over
    let mut waiting: Vec<ReplyTo<()>> = Vec::new();
    loop {
        match ctx.receive() {
            LinkMsg::Command(command) => forward(&client, url, &commands, command),
            LinkMsg::State { thread, down: now } => {
                let slot = &mut down[usize::from(thread != "commands")];
                match (&slot, &now) {
                    (Some(_), None) => log::info!("pub/sub broker {url}: {thread} connected"),
                    (None, Some(why)) => {
                        log::warn!("pub/sub broker {url}: {thread} lost Redis: {why}");
                    }
                    _ => {}
                }
                *slot = now;
                if thread == "subscriber" {
                    tried = true;
                    for reply in waiting.drain(..) {
                        let _ = reply.send(());
                    }
                }
            }
            LinkMsg::Ready(reply) if tried || client.is_err() => {
                let _ = reply.send(());
            }
            LinkMsg::Ready(reply) => waiting.push(reply),
            LinkMsg::ThreadEnded(thread) => panic!("the Redis {thread} thread ended"),
            LinkMsg::Up(reply) => {
                let _ = reply.send(client.is_ok() && down.iter().all(Option::is_none));
            }
        }
    }
}

/// Starts one of the link's threads; the link hears of it if the thread ends early.
fn start_thread(
    thread: &'static str,
    stop: &StopOnDrop,
    link: &Addr<LinkMsg>,
    body: impl FnOnce() + Send + 'static,
) {
    let notice = EndedNotice {
        link: link.clone(),
        thread,
        stop: stop.0.clone(),
    };
    let spawned = thread::Builder::new()
        .name(format!("corral-redis-{thread}"))
        .spawn(move || {
            let _notice = notice; // dropped when the body returns or panics
            body();
        });
    if let Err(err) = spawned {
        panic!("cannot start the Redis {thread} thread: {err}");
    }
}

fn forward(
    client: &Result<redis::Client, String>,
    url: &str,
    commands: &mpsc::Sender<Command>,
    command: Command,
) {
    if let Err(reason) = client {
        command.fail(BrokerError::Refused {
            url: url.to_string(),
            reason: reason.clone(),
        });
    } else if let Err(unsent) = commands.send(command) {
        unsent.0.fail(BrokerError::Restarting);
    }
}

/// Doubling waits between reconnects.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(BACKOFF_FIRST)
    }
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        wait
    }
    fn reset(&mut self) {
        self.0 = BACKOFF_FIRST;
    }
}

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

fn state(link: &Addr<LinkMsg>, thread: &'static str, down: Option<String>) {
    let _ = link.send(LinkMsg::State { thread, down });
}

/// The command thread: one connection, commands one at a time; while Redis is away, each
/// command fails at once with the last reason and the thread reconnects with back-off.
/// Ends when the link process drops its end of the channel.
fn command_thread(
    client: &redis::Client,
    url: &str,
    backlog_len: usize,
    requests: &mpsc::Receiver<Command>,
    link: &Addr<LinkMsg>,
) {
    let mut conn: Option<redis::Connection> = None;
    let mut backoff = Backoff::new();
    let mut reason = String::from("not connected yet");
    let unreachable = |reason: &str| BrokerError::Unreachable {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    loop {
        if conn.is_none() {
            match connect(client) {
                Ok(c) => {
                    conn = Some(c);
                    backoff.reset();
                    state(link, "commands", None);
                }
                Err(err) => {
                    reason = err.to_string();
                    state(link, "commands", Some(reason.clone()));
                }
            }
        }
        let next = match conn {
            Some(_) => requests.recv().map_err(|_| None),
            None => requests.recv_timeout(backoff.next()).map_err(|e| match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => Some(()),
                std::sync::mpsc::RecvTimeoutError::Disconnected => None,
            }),
        };
        let command = match next {
            Ok(command) => command,
            Err(Some(())) => continue, // back-off over: try to connect again
            Err(None) => return,       // the link process is gone
        };
        let Some(c) = conn.as_mut() else {
            command.fail(unreachable(&reason));
            continue;
        };
        if let Err(err) = run(c, url, backlog_len, command) {
            // Anything but an answer from Redis leaves the connection in an unknown state
            // (a late reply would be read as the next command's): start afresh.
            reason = err;
            conn = None;
            state(link, "commands", Some(reason.clone()));
        }
    }
}

/// Runs one command and replies; `Err` (after replying) when the connection is unusable.
fn run(
    conn: &mut redis::Connection,
    url: &str,
    backlog_len: usize,
    command: Command,
) -> Result<(), String> {
    match command {
        Command::Publish { topic, data, reply } => {
            let result: redis::RedisResult<(String, u64)> = redis::cmd("EVAL")
                .arg(PUBLISH_SCRIPT)
                .arg(4)
                .arg(SEQ_KEY)
                .arg(format!("{BACKLOG_PREFIX}{topic}"))
                .arg(LOG_KEY)
                .arg(format!("{CHANNEL_PREFIX}{topic}"))
                .arg(&*data)
                .arg(backlog_len)
                .arg(LOG_LEN)
                .arg(&topic)
                .query(conn);
            let (answer, broken) = answered(url, result);
            let answer = answer.and_then(|(id, instances)| {
                let id = id.parse().map_err(|_| BrokerError::Refused {
                    url: url.to_string(),
                    reason: format!("an event id that is not a number: {id:?}"),
                })?;
                Ok(Published { id, instances })
            });
            let _ = reply.send(answer);
            broken.map_or(Ok(()), Err)
        }
        Command::Backlog {
            topic,
            after,
            reply,
        } => {
            let result: redis::RedisResult<Vec<Vec<u8>>> = redis::cmd("LRANGE")
                .arg(format!("{BACKLOG_PREFIX}{topic}"))
                .arg(0)
                .arg(-1)
                .query(conn);
            let (answer, broken) = answered(url, result);
            let events = answer.map(|entries| {
                entries
                    .iter()
                    .filter_map(|entry| split_id(entry))
                    .filter(|(id, _)| *id > after)
                    .map(|(id, data)| (id, Arc::from(data)))
                    .collect()
            });
            let _ = reply.send(events);
            broken.map_or(Ok(()), Err)
        }
    }
}

/// A command's result as the handler sees it, and whether the connection must be dropped.
fn answered<T>(
    url: &str,
    result: redis::RedisResult<T>,
) -> (Result<T, BrokerError>, Option<String>) {
    match result {
        Ok(value) => (Ok(value), None),
        Err(err) if err.kind() == redis::ErrorKind::Io || err.is_unrecoverable_error() => {
            let reason = err.to_string();
            let error = BrokerError::Unreachable {
                url: url.to_string(),
                reason: reason.clone(),
            };
            (Err(error), Some(reason))
        }
        Err(err) => {
            let error = BrokerError::Refused {
                url: url.to_string(),
                reason: err.to_string(),
            };
            (Err(error), None)
        }
    }
}

/// `id SP rest` → (id, rest).
fn split_id(entry: &[u8]) -> Option<(u64, &[u8])> {
    let space = entry.iter().position(|&b| b == b' ')?;
    let id = std::str::from_utf8(&entry[..space]).ok()?.parse().ok()?;
    Some((id, &entry[space + 1..]))
}

/// A log member, `id SP topic-length SP topic data` → (topic, id, data).
fn split_log_entry(entry: &[u8]) -> Option<(String, u64, &[u8])> {
    let (id, rest) = split_id(entry)?;
    let (len, rest) = split_id(rest)?;
    let len = usize::try_from(len).ok()?;
    let topic = std::str::from_utf8(rest.get(..len)?).ok()?.to_string();
    Some((topic, id, &rest[len..]))
}

/// The subscriber thread: listens on every topic's channel and delivers each event once, in
/// id order; reconnects with back-off, replaying what it missed from the log. Ends when the
/// link process ends.
fn subscriber_thread(
    client: &redis::Client,
    deliver: &Deliver,
    stop: &AtomicBool,
    link: &Addr<LinkMsg>,
) {
    // The last id delivered; `None` until the first subscription (before it: nothing missed).
    let mut delivered: Option<u64> = None;
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::Acquire) {
        let err = match subscribe(client, deliver, stop, link, &mut delivered, &mut backoff) {
            Ok(()) => return,
            Err(err) => err,
        };
        state(link, "subscriber", Some(err.to_string()));
        let mut wait = backoff.next();
        while !wait.is_zero() && !stop.load(Ordering::Acquire) {
            let step = wait.min(STOP_CHECK);
            thread::sleep(step); // this thread's own back-off, no scheduler's
            wait -= step;
        }
    }
}

/// One subscription, until Redis goes away (`Err`) or the link stops (`Ok`).
fn subscribe(
    client: &redis::Client,
    deliver: &Deliver,
    stop: &AtomicBool,
    link: &Addr<LinkMsg>,
    delivered: &mut Option<u64>,
    backoff: &mut Backoff,
) -> redis::RedisResult<()> {
    let mut conn = connect(client)?;
    let mut pubsub = conn.as_pubsub();
    pubsub.psubscribe(format!("{CHANNEL_PREFIX}*"))?;
    // Subscribed: from here on every event arrives on `pubsub`. What came before, since the
    // last one delivered, is in the log (the first time, nothing came before).
    let mut side = connect(client)?;
    match *delivered {
        None => {
            let seq: Option<u64> = redis::cmd("GET").arg(SEQ_KEY).query(&mut side)?;
            *delivered = Some(seq.unwrap_or(0));
        }
        Some(after) => {
            let missed: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
                .arg(LOG_KEY)
                .arg(format!("({after}"))
                .arg("+inf")
                .query(&mut side)?;
            for entry in &missed {
                if let Some((topic, id, data)) = split_log_entry(entry) {
                    pass_on(deliver, delivered, topic, id, data);
                }
            }
        }
    }
    drop(side);
    pubsub.set_read_timeout(Some(STOP_CHECK))?;
    state(link, "subscriber", None);
    backoff.reset();
    while !stop.load(Ordering::Acquire) {
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(err) if err.is_timeout() => continue,
            Err(err) => return Err(err),
        };
        let Some(topic) = msg.get_channel_name().strip_prefix(CHANNEL_PREFIX) else {
            continue;
        };
        if let Some((id, data)) = split_id(msg.get_payload_bytes()) {
            pass_on(deliver, delivered, topic.to_string(), id, data);
        }
    }
    Ok(())
}

/// Delivers an event unless it was delivered already (a replayed one also received live).
fn pass_on(deliver: &Deliver, delivered: &mut Option<u64>, topic: String, id: u64, data: &[u8]) {
    if delivered.is_some_and(|last| id <= last) {
        return;
    }
    *delivered = Some(id);
    deliver(topic, id, Arc::from(data));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_split_into_topic_id_and_data() {
        let (topic, id, data) = split_log_entry(b"17 5 chat:hello world").expect("an entry");
        assert_eq!(
            (topic.as_str(), id, data),
            ("chat:", 17, &b"hello world"[..])
        );
        assert!(split_log_entry(b"17 9 short").is_none());
        assert_eq!(split_id(b"3 a b"), Some((3, &b"a b"[..])));
        assert_eq!(split_id(b"x a"), None);
    }
}
