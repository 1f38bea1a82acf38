//! The outbound scheduler: every request the bot makes to Telegram (replies, status edits,
//! uploads, button answers) is offered here and sent when Telegram's limits allow. Pure: the
//! decisions are driven by `now` and the IO (in `telegram_api`) reports back what happened.
//!
//! - Limits, sliding windows on send times: all chats together (30 a second), each private chat
//!   (1 a second), each group, supergroup or channel (negative chat id; 20 a minute). A window is
//!   kept `window_margin` longer than Telegram's so a request that travels faster than the one
//!   before it still lands inside the limit.
//! - Order: button answers, then replies and uploads (first offered, first sent), then status
//!   edits (the one pending longest first, so every status message gets its turn).
//! - A status edit of a message replaces a pending one of the same message (only the newest
//!   text is worth sending) and keeps its place in line; a reply that edits a message drops a
//!   pending status edit of it.
//! - At most one request per chat in flight (uploads aside: they may take minutes), so a
//!   chat's messages arrive in the order they were offered.
//! - A 429 pauses every send for `retry_after`; the request is sent again, first in line.
//! - Bounded: a chat holds at most `maximum_pending_per_chat` requests and all chats together
//!   `maximum_pending_in_all`. Past that the chat's oldest status edit is dropped for the new
//!   request; a reply with no status edit to drop is refused (the caller says so in the log).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Telegram's limits and the queue's bounds. The defaults are Telegram's published limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// Requests to all chats together in `global_window`.
    pub global_requests: usize,
    pub global_window: Duration,
    /// Requests to one private chat in `private_chat_window`.
    pub private_chat_requests: usize,
    pub private_chat_window: Duration,
    /// Requests to one group, supergroup or channel in `group_chat_window`.
    pub group_chat_requests: usize,
    pub group_chat_window: Duration,
    /// Added to every window: the slack for requests that arrive closer together than sent.
    pub window_margin: Duration,
    /// Requests waiting for one chat.
    pub maximum_pending_per_chat: usize,
    /// Requests waiting for all chats together.
    pub maximum_pending_in_all: usize,
    /// Requests on the wire at once.
    pub maximum_in_flight: usize,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            global_requests: 30,
            global_window: Duration::from_secs(1),
            private_chat_requests: 1,
            private_chat_window: Duration::from_secs(1),
            group_chat_requests: 20,
            group_chat_window: Duration::from_secs(60),
            window_margin: Duration::from_millis(100),
            maximum_pending_per_chat: 64,
            maximum_pending_in_all: 100_000,
            maximum_in_flight: 16,
        }
    }
}

/// What a request is, for its place in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundKind {
    /// `answerCallbackQuery`: stops the user's spinner; no chat.
    CallbackAnswer,
    /// `getChatMember` for a pressed button (may this person act for the chat?): the press
    /// waits for it; no chat (it sends nothing to one), first in line.
    Lookup,
    /// A message to a person (an answer, a notice, a new status message).
    Reply,
    /// An edit made in answer to a person (a pressed button): a reply, never coalesced.
    ReplyEdit { message_id: i32 },
    /// A finished file.
    Upload,
    /// A status refresh of a message: coalesced, sent after everything else.
    StatusEdit { message_id: i32 },
}

impl OutboundKind {
    fn rank(self) -> u8 {
        match self {
            OutboundKind::CallbackAnswer | OutboundKind::Lookup => 0,
            OutboundKind::Reply | OutboundKind::ReplyEdit { .. } | OutboundKind::Upload => 1,
            OutboundKind::StatusEdit { .. } => 2,
        }
    }
}

/// Where a request stands in line: rank, then the order it was (first) offered in.
type LineKey = (u8, u64);

#[derive(Debug)]
struct Pending<P> {
    chat_id: Option<i64>,
    kind: OutboundKind,
    payload: P,
    attempts: u32,
}

/// What `offer` did with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum OfferOutcome<P> {
    /// In line; `dropped` is the status edit that made room for it.
    Queued { dropped: Option<P> },
    /// It replaced the pending edit of the same message (given back).
    Coalesced { replaced: P },
    /// The chat's queue (or the whole queue) is full of replies: not taken.
    Refused(P),
}

/// A request taken out of line to be sent now; give the ticket back with `finished` or
/// `too_many_requests`.
#[derive(Debug)]
pub struct Dispatch<P> {
    pub ticket: Ticket,
    pub payload: P,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    key: LineKey,
    pub chat_id: Option<i64>,
    pub kind: OutboundKind,
    /// Sends so far that were answered with 429.
    pub attempts: u32,
}

/// What to do next.
#[derive(Debug)]
pub enum Decision<P> {
    Send(Dispatch<P>),
    /// Nothing may be sent before this instant (a limit or a 429 pause).
    WaitUntil(Instant),
    /// Nothing to send until something is offered or a request in flight finishes.
    Idle,
}

/// Send times in a sliding window.
#[derive(Debug, Default)]
struct SendWindow {
    sent_at: VecDeque<Instant>,
}

impl SendWindow {
    /// When the next request may go: `now` when the window has room.
    fn free_at(&mut self, now: Instant, requests: usize, window: Duration) -> Instant {
        while self
            .sent_at
            .front()
            .is_some_and(|sent| now.saturating_duration_since(*sent) >= window)
        {
            self.sent_at.pop_front();
        }
        if self.sent_at.len() < requests.max(1) {
            return now;
        }
        let index = self.sent_at.len() - requests.max(1);
        self.sent_at.get(index).map_or(now, |sent| *sent + window)
    }

    /// Once the window is half full, the next request goes `window / requests` after the last
    /// one (`None`: no spacing). Without it a saturated queue sends a whole window in one burst
    /// and nothing until the window slides, so a reply offered just after a burst waited for the
    /// next one (~0.6 s in `bench_outbound`, BENCHMARKS.md); spaced, it waits one step (~37 ms
    /// for 30 per 1.1 s) and the throughput is the same. Call after `free_at` (which drops the
    /// sends that left the window).
    fn spaced_free_at(&self, requests: usize, window: Duration) -> Option<Instant> {
        let requests = requests.max(1);
        if self.sent_at.len() < requests.div_ceil(2) {
            return None;
        }
        let spacing = window / u32::try_from(requests).unwrap_or(u32::MAX);
        self.sent_at.back().map(|last| *last + spacing)
    }

    fn record(&mut self, now: Instant) {
        self.sent_at.push_back(now);
    }

    fn is_quiet(&self, now: Instant, window: Duration) -> bool {
        self.sent_at
            .back()
            .is_none_or(|sent| now.saturating_duration_since(*sent) >= window)
    }
}

#[derive(Debug, Default)]
struct ChatState {
    pending: usize,
    /// A message or edit on the wire (uploads do not count).
    in_flight: bool,
    uploads_in_flight: usize,
    window: SendWindow,
}

/// The pure scheduler; `P` is what the IO needs to send a request.
#[derive(Debug)]
pub struct OutboundScheduler<P> {
    limits: OutboundLimits,
    next_order: u64,
    line: BTreeMap<LineKey, Pending<P>>,
    /// The pending status edit of each (chat, message).
    status_edits: HashMap<(i64, i32), LineKey>,
    chats: HashMap<i64, ChatState>,
    global_window: SendWindow,
    in_flight: usize,
    paused_until: Option<Instant>,
    last_sweep: Option<Instant>,
}

/// Private chats have positive ids; groups, supergroups and channels negative ones.
pub fn is_group_chat(chat_id: i64) -> bool {
    chat_id < 0
}

impl<P> OutboundScheduler<P> {
    pub fn new(limits: OutboundLimits) -> Self {
        OutboundScheduler {
            limits,
            next_order: 0,
            line: BTreeMap::new(),
            status_edits: HashMap::new(),
            chats: HashMap::new(),
            global_window: SendWindow::default(),
            in_flight: 0,
            paused_until: None,
            last_sweep: None,
        }
    }

    pub fn limits(&self) -> OutboundLimits {
        self.limits
    }

    /// Requests waiting (not on the wire).
    pub fn pending(&self) -> usize {
        self.line.len()
    }

    pub fn pending_in_chat(&self, chat_id: i64) -> usize {
        self.chats.get(&chat_id).map_or(0, |chat| chat.pending)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    fn chat_limit(&self, chat_id: i64) -> (usize, Duration) {
        let margin = self.limits.window_margin;
        if is_group_chat(chat_id) {
            (
                self.limits.group_chat_requests,
                self.limits.group_chat_window + margin,
            )
        } else {
            (
                self.limits.private_chat_requests,
                self.limits.private_chat_window + margin,
            )
        }
    }

    /// Puts a request in line.
    pub fn offer(
        &mut self,
        chat_id: Option<i64>,
        kind: OutboundKind,
        payload: P,
    ) -> OfferOutcome<P> {
        if let (Some(chat), OutboundKind::StatusEdit { message_id }) = (chat_id, kind)
            && let Some(key) = self.status_edits.get(&(chat, message_id))
            && let Some(pending) = self.line.get_mut(key)
        {
            let replaced = std::mem::replace(&mut pending.payload, payload);
            return OfferOutcome::Coalesced { replaced };
        }
        let mut dropped = None;
        if let (Some(chat), OutboundKind::ReplyEdit { message_id }) = (chat_id, kind)
            && let Some(key) = self.status_edits.get(&(chat, message_id)).copied()
        {
            dropped = self.remove(key).map(|pending| pending.payload);
        }
        let chat_full = chat_id
            .is_some_and(|chat| self.pending_in_chat(chat) >= self.limits.maximum_pending_per_chat);
        let all_full = self.line.len() >= self.limits.maximum_pending_in_all;
        if dropped.is_none() && (chat_full || all_full) {
            let oldest_edit = chat_id.and_then(|chat| self.oldest_status_edit_of(chat));
            match oldest_edit {
                Some(key) => dropped = self.remove(key).map(|pending| pending.payload),
                None => return OfferOutcome::Refused(payload),
            }
        }
        self.next_order += 1;
        let key = (kind.rank(), self.next_order);
        self.insert(
            key,
            Pending {
                chat_id,
                kind,
                payload,
                attempts: 0,
            },
        );
        OfferOutcome::Queued { dropped }
    }

    fn oldest_status_edit_of(&self, chat_id: i64) -> Option<LineKey> {
        self.line
            .range((OutboundKind::StatusEdit { message_id: 0 }.rank(), 0)..)
            .find(|(_, pending)| pending.chat_id == Some(chat_id))
            .map(|(key, _)| *key)
    }

    fn insert(&mut self, key: LineKey, pending: Pending<P>) {
        if let Some(chat) = pending.chat_id {
            self.chats.entry(chat).or_default().pending += 1;
            if let OutboundKind::StatusEdit { message_id } = pending.kind {
                self.status_edits.insert((chat, message_id), key);
            }
        }
        self.line.insert(key, pending);
    }

    fn remove(&mut self, key: LineKey) -> Option<Pending<P>> {
        let pending = self.line.remove(&key)?;
        if let Some(chat) = pending.chat_id {
            if let Some(state) = self.chats.get_mut(&chat) {
                state.pending = state.pending.saturating_sub(1);
            }
            if let OutboundKind::StatusEdit { message_id } = pending.kind {
                self.status_edits.remove(&(chat, message_id));
            }
        }
        Some(pending)
    }

    /// The next request to send at `now`, or how long to wait.
    pub fn next(&mut self, now: Instant) -> Decision<P> {
        self.sweep_idle_chats(now);
        if self.line.is_empty() {
            return Decision::Idle;
        }
        if let Some(until) = self.paused_until {
            if until > now {
                return Decision::WaitUntil(until);
            }
            self.paused_until = None;
        }
        if self.in_flight >= self.limits.maximum_in_flight {
            return Decision::Idle;
        }
        let global_window = self.limits.global_window + self.limits.window_margin;
        let global_free =
            self.global_window
                .free_at(now, self.limits.global_requests, global_window);
        if global_free > now {
            return Decision::WaitUntil(global_free);
        }
        if let Some(spaced) = self
            .global_window
            .spaced_free_at(self.limits.global_requests, global_window)
            && spaced > now
        {
            return Decision::WaitUntil(spaced);
        }
        let mut earliest: Option<Instant> = None;
        let mut blocked_chats = HashSet::new();
        let mut chosen = None;
        for (key, pending) in &self.line {
            let Some(chat) = pending.chat_id else {
                chosen = Some(*key);
                break;
            };
            if blocked_chats.contains(&chat) {
                continue;
            }
            let (requests, window) = self.chat_limit(chat);
            let Some(state) = self.chats.get_mut(&chat) else {
                chosen = Some(*key);
                break;
            };
            if state.in_flight && pending.kind != OutboundKind::Upload {
                blocked_chats.insert(chat);
                continue;
            }
            let free_at = state.window.free_at(now, requests, window);
            if free_at > now {
                earliest = Some(earliest.map_or(free_at, |earliest| earliest.min(free_at)));
                blocked_chats.insert(chat);
                continue;
            }
            chosen = Some(*key);
            break;
        }
        let Some(key) = chosen else {
            return earliest.map_or(Decision::Idle, Decision::WaitUntil);
        };
        let Some(pending) = self.remove(key) else {
            return Decision::Idle;
        };
        self.global_window.record(now);
        self.in_flight += 1;
        if let Some(chat) = pending.chat_id {
            let state = self.chats.entry(chat).or_default();
            state.window.record(now);
            if pending.kind == OutboundKind::Upload {
                state.uploads_in_flight += 1;
            } else {
                state.in_flight = true;
            }
        }
        Decision::Send(Dispatch {
            ticket: Ticket {
                key,
                chat_id: pending.chat_id,
                kind: pending.kind,
                attempts: pending.attempts,
            },
            payload: pending.payload,
        })
    }

    /// The request of `ticket` is done (sent, or failed for good).
    pub fn finished(&mut self, ticket: Ticket) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(chat) = ticket.chat_id
            && let Some(state) = self.chats.get_mut(&chat)
        {
            if ticket.kind == OutboundKind::Upload {
                state.uploads_in_flight = state.uploads_in_flight.saturating_sub(1);
            } else {
                state.in_flight = false;
            }
        }
    }

    /// Telegram answered 429: every send waits `retry_after`, then this request goes again,
    /// first in its rank (a newer edit of the same message offered meanwhile wins, in its place).
    pub fn too_many_requests(
        &mut self,
        now: Instant,
        ticket: Ticket,
        payload: P,
        retry_after: Duration,
    ) {
        self.finished(ticket);
        self.pause(now, retry_after);
        let mut payload = payload;
        if let (Some(chat), OutboundKind::StatusEdit { message_id }) = (ticket.chat_id, ticket.kind)
            && let Some(newer_key) = self.status_edits.get(&(chat, message_id)).copied()
            && let Some(newer) = self.remove(newer_key)
        {
            payload = newer.payload;
        }
        self.insert(
            ticket.key,
            Pending {
                chat_id: ticket.chat_id,
                kind: ticket.kind,
                payload,
                attempts: ticket.attempts + 1,
            },
        );
    }

    /// Every send waits until `now + wait` (or longer, if already paused longer).
    pub fn pause(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        self.paused_until = Some(self.paused_until.map_or(until, |paused| paused.max(until)));
    }

    /// Forgets chats with nothing pending, nothing in flight and no send in their window.
    fn sweep_idle_chats(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|swept| now.saturating_duration_since(swept) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let margin = self.limits.window_margin;
        let private_window = self.limits.private_chat_window + margin;
        let group_window = self.limits.group_chat_window + margin;
        self.chats.retain(|chat, state| {
            let window = if is_group_chat(*chat) {
                group_window
            } else {
                private_window
            };
            state.pending > 0
                || state.in_flight
                || state.uploads_in_flight > 0
                || !state.window.is_quiet(now, window)
        });
    }

    /// Takes every request out of line (shutting down).
    pub fn drain(&mut self) -> Vec<P> {
        self.status_edits.clear();
        for state in self.chats.values_mut() {
            state.pending = 0;
        }
        std::mem::take(&mut self.line)
            .into_values()
            .map(|pending| pending.payload)
            .collect()
    }

    /// Chats the scheduler keeps state for (bounded by the active ones).
    pub fn known_chats(&self) -> usize {
        self.chats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> OutboundLimits {
        OutboundLimits {
            window_margin: Duration::ZERO,
            ..OutboundLimits::default()
        }
    }

    fn send<P: std::fmt::Debug>(scheduler: &mut OutboundScheduler<P>, now: Instant) -> Dispatch<P> {
        match scheduler.next(now) {
            Decision::Send(dispatch) => dispatch,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn answers_and_replies_go_before_status_edits_and_replies_keep_their_order() {
        let mut scheduler = OutboundScheduler::new(limits());
        let now = Instant::now();
        for message_id in 1..=5 {
            scheduler.offer(
                Some(100 + i64::from(message_id)),
                OutboundKind::StatusEdit { message_id },
                "edit",
            );
        }
        scheduler.offer(Some(1), OutboundKind::Reply, "reply 1");
        scheduler.offer(Some(2), OutboundKind::Reply, "reply 2");
        scheduler.offer(None, OutboundKind::CallbackAnswer, "answer");
        let order: Vec<&str> = (0..8)
            .map(|_| {
                let dispatch = send(&mut scheduler, now);
                scheduler.finished(dispatch.ticket);
                dispatch.payload
            })
            .collect();
        assert_eq!(
            order,
            [
                "answer", "reply 1", "reply 2", "edit", "edit", "edit", "edit", "edit"
            ]
        );
    }

    #[test]
    fn a_newer_edit_replaces_the_pending_one_and_keeps_its_place() {
        let mut scheduler = OutboundScheduler::new(limits());
        let now = Instant::now();
        scheduler.offer(
            Some(1),
            OutboundKind::StatusEdit { message_id: 10 },
            "old 10",
        );
        scheduler.offer(Some(2), OutboundKind::StatusEdit { message_id: 20 }, "20");
        let outcome = scheduler.offer(
            Some(1),
            OutboundKind::StatusEdit { message_id: 10 },
            "new 10",
        );
        assert_eq!(outcome, OfferOutcome::Coalesced { replaced: "old 10" });
        assert_eq!(scheduler.pending(), 2);
        let first = send(&mut scheduler, now);
        assert_eq!(first.payload, "new 10");
        let second = send(&mut scheduler, now);
        assert_eq!(second.payload, "20");
        // An edit offered while the previous edit of that message is on the wire waits its turn.
        scheduler.offer(
            Some(1),
            OutboundKind::StatusEdit { message_id: 10 },
            "newest 10",
        );
        assert_eq!(scheduler.pending(), 1);
    }

    #[test]
    fn a_reply_edit_drops_the_pending_status_edit_of_that_message() {
        let mut scheduler = OutboundScheduler::new(limits());
        scheduler.offer(
            Some(1),
            OutboundKind::StatusEdit { message_id: 10 },
            "status",
        );
        let outcome = scheduler.offer(
            Some(1),
            OutboundKind::ReplyEdit { message_id: 10 },
            "pressed",
        );
        assert_eq!(
            outcome,
            OfferOutcome::Queued {
                dropped: Some("status")
            }
        );
        assert_eq!(scheduler.pending(), 1);
    }

    #[test]
    fn a_private_chat_gets_one_request_a_second_and_others_go_meanwhile() {
        let mut scheduler = OutboundScheduler::new(limits());
        let start = Instant::now();
        scheduler.offer(Some(1), OutboundKind::Reply, "a1");
        scheduler.offer(Some(1), OutboundKind::Reply, "a2");
        scheduler.offer(Some(2), OutboundKind::Reply, "b1");
        let first = send(&mut scheduler, start);
        assert_eq!(first.payload, "a1");
        scheduler.finished(first.ticket);
        let second = send(&mut scheduler, start);
        assert_eq!(second.payload, "b1", "chat 1 waits, chat 2 does not");
        scheduler.finished(second.ticket);
        match scheduler.next(start + Duration::from_millis(10)) {
            Decision::WaitUntil(at) => assert_eq!(at, start + Duration::from_secs(1)),
            other => panic!("expected a wait, got {other:?}"),
        }
        assert_eq!(
            send(&mut scheduler, start + Duration::from_secs(1)).payload,
            "a2"
        );
    }

    #[test]
    fn one_request_per_chat_on_the_wire_so_a_chat_keeps_its_order() {
        let mut scheduler = OutboundScheduler::new(OutboundLimits {
            private_chat_requests: 100,
            ..limits()
        });
        let now = Instant::now();
        scheduler.offer(Some(1), OutboundKind::Reply, "first");
        scheduler.offer(Some(1), OutboundKind::Reply, "second");
        let first = send(&mut scheduler, now);
        assert!(matches!(scheduler.next(now), Decision::Idle));
        scheduler.finished(first.ticket);
        assert_eq!(send(&mut scheduler, now).payload, "second");
    }

    #[test]
    fn a_group_gets_twenty_a_minute() {
        let mut scheduler = OutboundScheduler::new(limits());
        let start = Instant::now();
        for _ in 0..25 {
            scheduler.offer(Some(-5), OutboundKind::Reply, ());
        }
        // Spaced as the global limit wants them past half its window (1 s / 30).
        for sent in 0..20 {
            let dispatch = send(&mut scheduler, start + Duration::from_millis(sent * 40));
            scheduler.finished(dispatch.ticket);
        }
        match scheduler.next(start + Duration::from_secs(1)) {
            Decision::WaitUntil(at) => assert_eq!(at, start + Duration::from_secs(60)),
            other => panic!("expected a wait, got {other:?}"),
        }
        send(&mut scheduler, start + Duration::from_secs(60));
    }

    #[test]
    fn all_chats_together_get_thirty_a_second_spaced_once_half_the_window_is_used() {
        let mut scheduler = OutboundScheduler::new(limits());
        let start = Instant::now();
        for chat in 1..=200 {
            scheduler.offer(Some(chat), OutboundKind::StatusEdit { message_id: 1 }, chat);
        }
        // Half the window goes at once, then one request every second / 30.
        let mut sent_at = Vec::new();
        let mut now = start;
        while now < start + Duration::from_secs(3) {
            match scheduler.next(now) {
                Decision::Send(dispatch) => {
                    scheduler.finished(dispatch.ticket);
                    sent_at.push(now);
                }
                Decision::WaitUntil(at) => now = at.max(now + Duration::from_micros(1)),
                Decision::Idle => panic!("requests are pending"),
            }
        }
        assert_eq!(sent_at.iter().filter(|at| **at == start).count(), 15);
        let spacing = Duration::from_secs(1) / 30;
        for pair in sent_at[14..].windows(2) {
            assert!(pair[1] - pair[0] >= spacing, "{:?}", pair[1] - pair[0]);
        }
        for (index, at) in sent_at.iter().enumerate() {
            let in_window = sent_at[index..]
                .iter()
                .take_while(|later| **later - *at < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 30,
                "{in_window} requests within a second of {at:?}"
            );
        }
        // The limit is used: about 30 a second after the first.
        assert!(sent_at.len() >= 15 + 2 * 30 - 2, "{} sent", sent_at.len());
    }

    #[test]
    fn every_status_message_gets_its_turn_while_edits_keep_coming() {
        // 1,000 messages in 1,000 chats, each offering a new edit every second: the one waiting
        // longest goes first, so each is refreshed within 1,000 / 30 seconds.
        let mut scheduler = OutboundScheduler::new(OutboundLimits::default());
        let start = Instant::now();
        let mut last_refresh = vec![start; 1000];
        let mut longest_unrefreshed = Duration::ZERO;
        // 1 ms steps: the sends are spaced 1.1 s / 30 apart, which coarser steps would round up.
        let step = Duration::from_millis(1);
        let mut now = start;
        while now < start + Duration::from_secs(180) {
            if (now - start).as_millis().is_multiple_of(1000) {
                for chat in 0..1000 {
                    scheduler.offer(
                        Some(chat + 1),
                        OutboundKind::StatusEdit { message_id: 1 },
                        chat,
                    );
                }
            }
            while let Decision::Send(dispatch) = scheduler.next(now) {
                let chat = dispatch.payload as usize;
                longest_unrefreshed = longest_unrefreshed.max(now - last_refresh[chat]);
                last_refresh[chat] = now;
                scheduler.finished(dispatch.ticket);
            }
            now += step;
        }
        assert!(
            scheduler.pending() <= 1000,
            "coalesced: one edit per message"
        );
        assert!(
            longest_unrefreshed < Duration::from_secs(40),
            "longest gap {longest_unrefreshed:?}"
        );
    }

    #[test]
    fn a_429_pauses_every_send_and_the_request_goes_again_first() {
        let mut scheduler = OutboundScheduler::new(limits());
        let start = Instant::now();
        scheduler.offer(Some(1), OutboundKind::Reply, "refused");
        scheduler.offer(Some(2), OutboundKind::Reply, "other chat");
        let first = send(&mut scheduler, start);
        scheduler.too_many_requests(start, first.ticket, first.payload, Duration::from_secs(5));
        match scheduler.next(start + Duration::from_secs(2)) {
            Decision::WaitUntil(at) => assert_eq!(at, start + Duration::from_secs(5)),
            other => panic!("every chat waits, got {other:?}"),
        }
        let again = send(&mut scheduler, start + Duration::from_secs(5));
        assert_eq!(again.payload, "refused");
        assert_eq!(again.ticket.attempts, 1);
        assert_eq!(
            send(&mut scheduler, start + Duration::from_secs(5)).payload,
            "other chat"
        );
    }

    #[test]
    fn a_429_on_an_edit_sends_the_newest_text_in_its_place() {
        let mut scheduler = OutboundScheduler::new(limits());
        let start = Instant::now();
        scheduler.offer(Some(1), OutboundKind::StatusEdit { message_id: 7 }, "old");
        scheduler.offer(Some(2), OutboundKind::StatusEdit { message_id: 8 }, "other");
        let first = send(&mut scheduler, start);
        scheduler.offer(Some(1), OutboundKind::StatusEdit { message_id: 7 }, "new");
        scheduler.too_many_requests(start, first.ticket, first.payload, Duration::from_secs(1));
        assert_eq!(scheduler.pending(), 2);
        assert_eq!(
            send(&mut scheduler, start + Duration::from_secs(2)).payload,
            "new"
        );
    }

    #[test]
    fn a_full_chat_drops_its_oldest_status_edit_and_refuses_replies_past_that() {
        let mut scheduler = OutboundScheduler::new(OutboundLimits {
            maximum_pending_per_chat: 3,
            ..limits()
        });
        scheduler.offer(
            Some(1),
            OutboundKind::StatusEdit { message_id: 1 },
            "edit 1",
        );
        scheduler.offer(
            Some(1),
            OutboundKind::StatusEdit { message_id: 2 },
            "edit 2",
        );
        scheduler.offer(Some(1), OutboundKind::Reply, "reply 1");
        assert_eq!(
            scheduler.offer(Some(1), OutboundKind::Reply, "reply 2"),
            OfferOutcome::Queued {
                dropped: Some("edit 1")
            }
        );
        assert_eq!(
            scheduler.offer(Some(1), OutboundKind::Reply, "reply 3"),
            OfferOutcome::Queued {
                dropped: Some("edit 2")
            }
        );
        assert_eq!(
            scheduler.offer(Some(1), OutboundKind::Reply, "reply 4"),
            OfferOutcome::Refused("reply 4")
        );
        assert_eq!(
            scheduler.offer(
                Some(1),
                OutboundKind::StatusEdit { message_id: 3 },
                "edit 3"
            ),
            OfferOutcome::Refused("edit 3")
        );
        assert_eq!(scheduler.pending_in_chat(1), 3);
        // Another chat is not affected.
        assert!(matches!(
            scheduler.offer(Some(2), OutboundKind::Reply, "elsewhere"),
            OfferOutcome::Queued { dropped: None }
        ));
    }

    #[test]
    fn a_flood_of_offers_stays_bounded() {
        let mut scheduler = OutboundScheduler::new(limits());
        let now = Instant::now();
        for round in 0..10_000 {
            scheduler.offer(Some(1), OutboundKind::Reply, round);
            scheduler.offer(
                Some(1),
                OutboundKind::StatusEdit {
                    message_id: round % 500,
                },
                round,
            );
        }
        assert!(scheduler.pending() <= limits().maximum_pending_per_chat);
        for chat in 0..100_000 {
            scheduler.offer(Some(chat + 10), OutboundKind::Reply, 0);
        }
        assert!(scheduler.pending() <= limits().maximum_pending_in_all);
        // Idle chats are forgotten once their windows pass.
        let mut scheduler = OutboundScheduler::new(limits());
        for chat in 1..=1000 {
            scheduler.offer(Some(chat), OutboundKind::Reply, ());
        }
        let mut later = now;
        while scheduler.pending() > 0 {
            if let Decision::Send(dispatch) = scheduler.next(later) {
                scheduler.finished(dispatch.ticket);
            } else {
                later += Duration::from_millis(100);
            }
        }
        let _ = scheduler.next(later + Duration::from_secs(5));
        assert_eq!(scheduler.known_chats(), 0);
    }
}
