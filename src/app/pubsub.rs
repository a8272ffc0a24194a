//! Pub/sub for the demo: a topic registry *process* under its own supervisor, and handlers
//! that wait for it.
//!
//! - `GET /poll?topic=T` subscribes its connection's *process* once and hibernates with it
//!   (`Process::hibernate`): no coroutine is held while it waits, the mailbox stays. It is
//!   answered on a publish (a message to that process), at its timeout (204), or when the
//!   topic process dies (503: the dying topic process tells each subscriber it still has,
//!   so no waiter hangs); a client that hangs up is unsubscribed as soon as its socket
//!   reports it.
//! - `GET /poll/blocking?topic=T` is the same in plain sequential code: it blocks in
//!   `receive_timeout` on its coroutine, checking every `PEER_CHECK` that the client is
//!   still there. Simplest to write; costs a coroutine stack per waiter.
//! - `POST /publish?topic=T` hands the body to every waiter and answers how many it reached.
//! - `GET /events?topic=T` is the streaming variant, Server-Sent Events: one event per publish
//!   with an `id:`, a comment line as heartbeat, and `Last-Event-ID` answered from a short
//!   per-topic backlog.
//!
//! With `pubsub.broker` set, topics are shared with every other Corral process on the same
//! Redis ([`super::broker`]): a publish goes through Redis, which gives the event its id, and
//! comes back to every instance's topic process as [`TopicMsg::Deliver`]; `Last-Event-ID`
//! is answered from Redis's backlog of the topic. Waiters still belong to their instance.
//! - `GET /ws?topic=T` is a WebSocket both ways: every publish on T reaches it as a text
//!   frame, and every text frame it sends is published on T. It is a callback handler
//!   ([`WsHandler`]), so an idle one hibernates: the topic process holds its `WsSender`, and
//!   a publish wakes it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corral_actors::{
    Addr, ChildSpec, Ctx, MonitorRef, ReplyTo, Spawn, Strategy, SupRef, Supervisor, demonitor,
    whereis,
};
use may::sync::mpsc;

use corral::{
    BodyWrite, Config, HttpError, IntoResponse, Process, Request, Response, Status, Wake,
    WebSocket, WsClosed, WsHandler, WsMessage, WsSender,
};

use super::broker::{Broker, BrokerError};
use super::mail::Mail;

/// The longest topic name we accept, bytes.
const MAX_TOPIC_BYTES: usize = 256;
/// How often a blocking long-poll or an SSE stream checks that its client is still there.
const PEER_CHECK: Duration = Duration::from_millis(500);
/// Events kept per topic for `Last-Event-ID`.
const BACKLOG: usize = 64;
/// How long a handler waits for the topic process to answer before giving up (503).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One published message as a subscriber receives it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: u64,
    pub data: Arc<[u8]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A long-poll: removed after its first event.
    Once,
    /// An SSE stream: stays until it unsubscribes or its channel closes.
    Stream,
}

struct Subscriber {
    id: u64,
    kind: Kind,
    target: Target,
    /// The topic process monitors a subscribed connection process: its end (a hang-up)
    /// unsubscribes it. Cancelled when the subscription ends first.
    monitor: Option<MonitorRef>,
}

impl Subscriber {
    fn forget(&self) {
        if let Some(monitor) = &self.monitor {
            demonitor(monitor);
        }
    }
}

/// How a subscriber is reached.
pub enum Target {
    /// A coroutine blocked on the receiving end (an SSE stream).
    Channel(mpsc::Sender<Event>),
    /// A long-poll's connection process, hibernated or blocked in `receive` (always
    /// `Kind::Once`).
    Process(Addr<Mail>),
    /// A WebSocket (always `Kind::Stream`), awake or hibernated.
    Socket(WsSender<Event>),
}

#[derive(Default)]
struct Topic {
    subscribers: Vec<Subscriber>,
    backlog: VecDeque<Event>,
    next_event: u64,
}

/// Messages of the topic process.
pub enum TopicMsg {
    Subscribe {
        topic: String,
        kind_stream: bool,
        /// For SSE resumption: also return the backlog after this event id.
        after: Option<u64>,
        target: Target,
        reply: ReplyTo<(u64, Vec<Event>)>,
    },
    Unsubscribe {
        topic: String,
        id: u64,
    },
    Publish {
        topic: String,
        data: Arc<[u8]>,
        reply: ReplyTo<usize>,
    },
    /// An event that came through the broker, with the broker's id: delivered like a
    /// publish.
    Deliver {
        topic: String,
        event: Event,
    },
    Subscribers(ReplyTo<usize>),
    /// Makes the process panic (demonstrates and tests supervision).
    Crash,
}

/// The demo's pub/sub: the registered name of its topic process and its supervisor.
pub struct Topics {
    name: String,
    /// Started on first use: actors need the may runtime, which the server starts. A may
    /// mutex, not a `OnceLock`: a coroutine waiting for another's initialisation must park,
    /// not block its worker thread (the initialiser may need that very thread to finish).
    supervisor: may::sync::Mutex<Option<SupRef>>,
    poll_timeout: Duration,
    heartbeat: Duration,
    /// The link to Redis, when topics are shared between instances (`pubsub.broker`).
    broker: Option<Arc<Broker>>,
}

impl Topics {
    pub fn new(poll_timeout: Duration, heartbeat: Duration) -> Topics {
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        Topics {
            name: format!("corral.topics.{}.{instance}", std::process::id()),
            supervisor: may::sync::Mutex::new(None),
            poll_timeout,
            heartbeat,
            broker: None,
        }
    }

    /// The demo's topics as configured: `[demo]` timeouts, and `pubsub.broker` (if set).
    pub fn from_config(config: &Config) -> Topics {
        let topics = Topics::new(
            Duration::from_millis(config.demo.poll_timeout_ms),
            Duration::from_millis(config.demo.sse_heartbeat_ms),
        );
        match config.pubsub.broker.as_str() {
            "" => topics,
            url => topics.with_broker(url),
        }
    }

    /// Shares these topics with every Corral on the Redis at `url` (a validated
    /// `pubsub.broker`).
    pub fn with_broker(mut self, url: &str) -> Topics {
        let topics = self.name.clone();
        let deliver = Arc::new(move |topic: String, id: u64, data: Arc<[u8]>| {
            // The topic process restarting: its waiters got 503 and come back, the event
            // is in Redis's backlog for SSE streams that resume.
            if let Some(process) = whereis::<TopicMsg>(&topics) {
                let event = Event { id, data };
                let _ = process.send(TopicMsg::Deliver { topic, event });
            }
        });
        let name = format!("{}.broker", self.name);
        self.broker = Some(Arc::new(Broker::new(url, name, BACKLOG, deliver)));
        self
    }

    /// Whether the broker link has Redis now (`None`: no broker, or the link does not
    /// answer).
    pub fn broker_up(&self) -> Option<bool> {
        self.ensure_started().ok()?;
        self.broker.as_ref()?.up()
    }

    /// The topic process's supervisor's restart count, starting it (one_for_one) on first use.
    fn ensure_started(&self) -> Result<u64, HttpError> {
        let mut slot = self.supervisor.lock().map_err(|_| unavailable())?;
        if slot.is_none() {
            let name = self.name.clone();
            let mut supervisor = Supervisor::new(Strategy::OneForOne)
                .intensity(5, Duration::from_secs(5))
                .child(ChildSpec::new("topics", move || {
                    Spawn::new().register(name.clone()).spawn(run_topics)
                }));
            if let Some(broker) = &self.broker {
                supervisor = supervisor.child(broker.child_spec());
            }
            let started = supervisor.start();
            match started {
                Ok(sup) => {
                    *slot = Some(sup);
                    if let Some(broker) = &self.broker {
                        broker.wait_ready();
                    }
                }
                Err(err) => {
                    log::error!("cannot start the topic process: {err}");
                    return Err(unavailable());
                }
            }
        }
        Ok(slot.as_ref().map_or(0, SupRef::restarts))
    }

    /// Restarts of the topic process so far.
    pub fn restarts(&self) -> u64 {
        self.ensure_started().unwrap_or(0)
    }

    fn process(&self) -> Result<corral_actors::Addr<TopicMsg>, HttpError> {
        self.ensure_started()?;
        whereis::<TopicMsg>(&self.name).ok_or_else(unavailable)
    }

    /// Subscribers right now (for `/metrics`); `None` if the process does not answer.
    pub fn subscribers(&self) -> Option<usize> {
        let process = self.process().ok()?;
        process.call(TopicMsg::Subscribers, CALL_TIMEOUT).ok()
    }

    /// `GET /poll?topic=T`.
    pub fn poll(&self, req: &Request) -> Result<Response, HttpError> {
        self.poll_on(req, &topic(req)?)
    }

    /// Long-polls `topic` with the connection's process, hibernated while it waits.
    pub fn poll_on(&self, req: &Request, topic: &str) -> Result<Response, HttpError> {
        let topic = topic.to_string();
        let process = self.process()?;
        let me = fresh_mailbox(req);
        let (id, _) = subscribe(&process, &topic, false, None, Target::Process(me.addr()))?;
        let poll_timeout = self.poll_timeout;
        Ok(me.hibernate(poll_timeout, move |wake| match wake {
            Wake::Message(Mail::Event(event)) => {
                Response::bytes("application/octet-stream", event.data.to_vec())
            }
            Wake::Message(Mail::TopicGone) => unavailable().into_response(),
            // Timed out, or a message not from the topic: no longer a subscriber.
            _ => {
                let _ = process.send(TopicMsg::Unsubscribe { topic, id });
                Response::new(Status::NO_CONTENT)
            }
        }))
    }

    /// `GET /poll/blocking?topic=T`.
    pub fn poll_blocking(&self, req: &Request) -> Result<Response, HttpError> {
        self.poll_blocking_on(req, &topic(req)?)
    }

    /// Long-polls `topic` in plain blocking code: the connection's process receives on its
    /// coroutine.
    pub fn poll_blocking_on(&self, req: &Request, topic: &str) -> Result<Response, HttpError> {
        let topic = topic.to_string();
        let process = self.process()?;
        let me = fresh_mailbox(req);
        let (id, _) = subscribe(&process, &topic, false, None, Target::Process(me.addr()))?;
        let deadline = Instant::now() + self.poll_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = process.send(TopicMsg::Unsubscribe { topic, id });
                return Ok(Response::new(Status::NO_CONTENT));
            }
            match me.receive_timeout(left.min(PEER_CHECK)) {
                Some(Mail::Event(event)) => {
                    return Ok(Response::bytes(
                        "application/octet-stream",
                        event.data.to_vec(),
                    ));
                }
                Some(Mail::TopicGone) => return Err(unavailable()),
                Some(Mail::Text(_)) => {}
                None if req.peer_closed() => {
                    let _ = process.send(TopicMsg::Unsubscribe { topic, id });
                    return Ok(Response::new(Status::NO_CONTENT).with_close());
                }
                None => {}
            }
        }
    }

    /// `POST /publish?topic=T`.
    pub fn publish(&self, req: &Request) -> Result<String, HttpError> {
        self.publish_to(&topic(req)?, req.body())
    }

    /// Publishes `data` on `topic`; answers how many subscribers it reached (with a broker:
    /// how many Corral instances, each of which wakes its own).
    pub fn publish_to(&self, topic: &str, data: &[u8]) -> Result<String, HttpError> {
        let topic = topic.to_string();
        let data: Arc<[u8]> = Arc::from(data);
        if let Some(broker) = &self.broker {
            self.ensure_started()?;
            let published = broker.publish(&topic, data).map_err(broker_unavailable)?;
            log::debug!(
                "published event {} on {topic:?} through the broker",
                published.id
            );
            return Ok(format!("{}\n", published.instances));
        }
        let reached = self
            .process()?
            .call(
                |reply| TopicMsg::Publish { topic, data, reply },
                CALL_TIMEOUT,
            )
            .map_err(|_| unavailable())?;
        Ok(format!("{reached}\n"))
    }

    /// `GET /events?topic=T`: Server-Sent Events.
    pub fn events(&self, req: &Request) -> Result<Response, HttpError> {
        self.events_on(req, &topic(req)?)
    }

    /// A Server-Sent Events stream of `topic` for this request.
    pub fn events_on(&self, req: &Request, topic: &str) -> Result<Response, HttpError> {
        let topic = topic.to_string();
        let after = match req.header("last-event-id") {
            Some(id) => Some(
                id.trim()
                    .parse::<u64>()
                    .map_err(|_| HttpError::bad_request("Last-Event-ID must be a number"))?,
            ),
            None => None,
        };
        let process = self.process()?;
        let (tx, rx) = mpsc::channel();
        let (id, mut backlog) = subscribe(&process, &topic, true, after, Target::Channel(tx))?;
        if let (Some(broker), Some(after)) = (&self.broker, after) {
            // Subscribed first, so nothing falls between the backlog and the live events;
            // what is in both is skipped by id below. The local backlog holds only what this
            // instance received; Redis's holds what every instance published.
            let events = match broker.backlog(&topic, after) {
                Ok(events) => events,
                Err(err) => {
                    let topic = topic.clone();
                    let _ = process.send(TopicMsg::Unsubscribe { topic, id });
                    return Err(broker_unavailable(err));
                }
            };
            backlog = events
                .into_iter()
                .map(|(id, data)| Event { id, data })
                .collect();
        }
        let heartbeat = self.heartbeat;
        let stream = move |out: &mut dyn BodyWrite| {
            let _unsubscribe = Unsubscribe {
                process: process.clone(),
                topic,
                id,
            };
            out.write_all(b": subscribed\n\n")?;
            let mut last = after.unwrap_or(0);
            for event in &backlog {
                write_event(out, event)?;
                last = last.max(event.id);
            }
            let mut last_beat = Instant::now();
            loop {
                match rx.recv_timeout(heartbeat.min(PEER_CHECK)) {
                    // Already written from the backlog.
                    Ok(event) if event.id <= last => {}
                    Ok(event) => {
                        write_event(out, &event)?;
                        last = event.id;
                    }
                    // A client that left, or a server shutting down, ends the stream within
                    // PEER_CHECK rather than at the next failed write.
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) if out.closed() => {
                        return Ok(());
                    }
                    // A heartbeat keeps proxies from timing out the quiet stream.
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if last_beat.elapsed() >= heartbeat {
                            out.write_all(b": heartbeat\n\n")?;
                            last_beat = Instant::now();
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
        };
        Ok(Response::stream("text/event-stream", stream).with_header("Cache-Control", "no-cache"))
    }

    /// `GET /ws?topic=T`.
    pub fn websocket(&self, req: &Request) -> Result<Response, HttpError> {
        self.websocket_on(req, &topic(req)?, |_| Ok(()))
    }

    /// A WebSocket on `topic`: publishes reach it as text frames, and its text frames that
    /// `check` accepts are published (one it refuses closes it with 1008 and the reason).
    pub fn websocket_on(
        &self,
        req: &Request,
        topic: &str,
        check: fn(&str) -> Result<(), &'static str>,
    ) -> Result<Response, HttpError> {
        let socket = TopicSocket {
            process: self.process()?,
            broker: self.broker.clone(),
            topic: topic.to_string(),
            subscription: None,
            check,
        };
        Ok(req.websocket_with(socket))
    }

    /// Crashes the topic process (its supervisor restarts it).
    pub fn crash(&self) -> Result<&'static str, HttpError> {
        self.process()?
            .send(TopicMsg::Crash)
            .map_err(|_| unavailable())?;
        Ok("crashing the topic process\n")
    }
}

/// The connection's process, with what earlier requests on the connection left in its
/// mailbox thrown away (an event that raced a timeout, a topic's death after it): a poll
/// waits for what comes after it subscribes.
fn fresh_mailbox<'a>(req: &Request<'a>) -> Process<'a, Mail> {
    let me = req.process::<Mail>();
    while me.try_receive().is_some() {}
    me
}

/// The handler of `GET /ws?topic=T`: subscribed while open, publishing what it hears.
struct TopicSocket {
    process: corral_actors::Addr<TopicMsg>,
    /// With `pubsub.broker` set, what it hears is published through the broker, as
    /// `/publish` does, so the other instances' subscribers hear it too.
    broker: Option<Arc<Broker>>,
    topic: String,
    subscription: Option<u64>,
    check: fn(&str) -> Result<(), &'static str>,
}

impl WsHandler for TopicSocket {
    type Info = Event;

    fn open(&mut self, ws: &mut WebSocket<'_, Event>) {
        let target = Target::Socket(ws.sender());
        match subscribe(&self.process, &self.topic, true, None, target) {
            Ok((id, _)) => self.subscription = Some(id),
            Err(_) => ws.close(1011, "pub/sub is restarting, try again"),
        }
    }

    fn message(&mut self, ws: &mut WebSocket<'_, Event>, message: WsMessage) {
        let WsMessage::Text(text) = message else {
            return ws.close(1003, "text frames only");
        };
        if let Err(why) = (self.check)(&text) {
            return ws.close(1008, why);
        }
        let (topic, data) = (self.topic.clone(), Arc::from(text.into_bytes()));
        if let Some(broker) = &self.broker {
            if let Err(err) = broker.publish(&topic, data) {
                log::warn!("a WebSocket's message on {topic:?} was not published: {err}");
                ws.close(1011, "the pub/sub broker is unreachable, try again");
            }
            return;
        }
        let published = self.process.call(
            |reply| TopicMsg::Publish { topic, data, reply },
            CALL_TIMEOUT,
        );
        if published.is_err() {
            ws.close(1011, "pub/sub is restarting, try again");
        }
    }

    fn info(&mut self, ws: &mut WebSocket<'_, Event>, event: Event) {
        // Published bytes that are not UTF-8 go as a binary frame.
        let message = match std::str::from_utf8(&event.data) {
            Ok(text) => WsMessage::Text(text.to_owned()),
            Err(_) => WsMessage::Binary(event.data.to_vec()),
        };
        let _ = ws.send(message);
    }

    fn closed(&mut self, _how: &WsClosed) {
        if let Some(id) = self.subscription.take() {
            let topic = std::mem::take(&mut self.topic);
            let _ = self.process.send(TopicMsg::Unsubscribe { topic, id });
        }
    }
}

/// Unsubscribes an SSE stream when it ends, however it ends.
struct Unsubscribe {
    process: corral_actors::Addr<TopicMsg>,
    topic: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let topic = std::mem::take(&mut self.topic);
        let _ = self
            .process
            .send(TopicMsg::Unsubscribe { topic, id: self.id });
    }
}

fn subscribe(
    process: &corral_actors::Addr<TopicMsg>,
    topic: &str,
    kind_stream: bool,
    after: Option<u64>,
    target: Target,
) -> Result<(u64, Vec<Event>), HttpError> {
    process
        .call(
            |reply| TopicMsg::Subscribe {
                topic: topic.to_string(),
                kind_stream,
                after,
                target,
                reply,
            },
            CALL_TIMEOUT,
        )
        .map_err(|_| unavailable())
}

fn write_event(out: &mut dyn BodyWrite, event: &Event) -> io::Result<()> {
    let mut text = format!("id: {}\n", event.id).into_bytes();
    for line in event.data.split(|&b| b == b'\n') {
        text.extend_from_slice(b"data: ");
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    text.push(b'\n');
    out.write_all(&text)
}

/// The broker's reason, as a 503 the client can act on.
fn broker_unavailable(err: BrokerError) -> HttpError {
    log::debug!("publish refused: {err}");
    HttpError::new(Status::SERVICE_UNAVAILABLE, err.to_string())
}

fn unavailable() -> HttpError {
    HttpError::new(
        Status::SERVICE_UNAVAILABLE,
        "pub/sub is restarting, try again",
    )
}

fn topic(req: &Request) -> Result<String, HttpError> {
    match req.query_param("topic") {
        Some(t) if !t.is_empty() && t.len() <= MAX_TOPIC_BYTES => Ok(t.into_owned()),
        _ => Err(HttpError::bad_request(
            "query `topic` is required (1 to 256 bytes)",
        )),
    }
}

/// Every topic, owned by the topic process. If that process dies (a crash, a kill), the
/// long-polls still subscribed are told, so none waits for its timeout: the connections
/// are processes, and this is the message a dying owner sends them.
#[derive(Default)]
struct AllTopics(HashMap<String, Topic>);

impl Drop for AllTopics {
    fn drop(&mut self) {
        for topic in self.0.values() {
            for subscriber in &topic.subscribers {
                if let Target::Process(addr) = &subscriber.target {
                    let _ = addr.try_send(Mail::TopicGone);
                }
            }
        }
    }
}

/// The topic process: all pub/sub state lives here, owned by one coroutine.
fn run_topics(mut ctx: Ctx<TopicMsg>) {
    let mut all = AllTopics::default();
    let topics = &mut all.0;
    let mut next_subscriber = 0u64;
    loop {
        match ctx.receive() {
            TopicMsg::Subscribe {
                topic,
                kind_stream,
                after,
                target,
                reply,
            } => {
                next_subscriber += 1;
                let id = next_subscriber;
                let monitor = match &target {
                    Target::Process(addr) => {
                        let topic = topic.clone();
                        Some(ctx.monitor(addr.pid(), move |_| TopicMsg::Unsubscribe { topic, id }))
                    }
                    Target::Channel(_) | Target::Socket(_) => None,
                };
                let entry = topics.entry(topic).or_default();
                let kind = if kind_stream {
                    Kind::Stream
                } else {
                    Kind::Once
                };
                entry.subscribers.push(Subscriber {
                    id,
                    kind,
                    target,
                    monitor,
                });
                let backlog = after.map_or_else(Vec::new, |after| {
                    entry
                        .backlog
                        .iter()
                        .filter(|e| e.id > after)
                        .cloned()
                        .collect()
                });
                let _ = reply.send((next_subscriber, backlog));
            }
            TopicMsg::Unsubscribe { topic, id } => {
                if let Some(entry) = topics.get_mut(&topic) {
                    entry.subscribers.retain(|s| {
                        let keep = s.id != id;
                        if !keep {
                            s.forget();
                        }
                        keep
                    });
                    if entry.subscribers.is_empty() && entry.backlog.is_empty() {
                        topics.remove(&topic);
                    }
                }
            }
            TopicMsg::Publish { topic, data, reply } => {
                let entry = topics.entry(topic).or_default();
                entry.next_event += 1;
                let event = Event {
                    id: entry.next_event,
                    data,
                };
                let _ = reply.send(fan_out(entry, event));
            }
            // Every instance receives every topic's events: only topics with subscribers
            // here get an entry (Redis keeps the backlog for `Last-Event-ID`).
            TopicMsg::Deliver { topic, event } => {
                if let Some(entry) = topics.get_mut(&topic) {
                    fan_out(entry, event);
                }
            }
            TopicMsg::Subscribers(reply) => {
                let _ = reply.send(topics.values().map(|t| t.subscribers.len()).sum());
            }
            TopicMsg::Crash => panic!("topic process crashed on request"),
        }
    }
}

/// Keeps `event` in the topic's backlog and hands it to every subscriber; how many it reached.
fn fan_out(entry: &mut Topic, event: Event) -> usize {
    if entry.backlog.len() == BACKLOG {
        entry.backlog.pop_front();
    }
    entry.backlog.push_back(event.clone());
    let mut reached = 0;
    for subscriber in std::mem::take(&mut entry.subscribers) {
        match subscriber.target {
            Target::Process(ref addr) => {
                subscriber.forget();
                let delivered = addr.try_send(Mail::Event(event.clone())).is_ok();
                reached += usize::from(delivered);
            }
            Target::Channel(ref tx) => {
                let delivered = tx.send(event.clone()).is_ok();
                reached += usize::from(delivered);
                if delivered && subscriber.kind == Kind::Stream {
                    entry.subscribers.push(subscriber);
                }
            }
            // A WebSocket that ended, or fell 1024 messages behind (it closes with 1008), is
            // dropped.
            Target::Socket(ref socket) => {
                let delivered = socket.send(event.clone()).is_ok();
                reached += usize::from(delivered);
                if delivered {
                    entry.subscribers.push(subscriber);
                }
            }
        }
    }
    reached
}
