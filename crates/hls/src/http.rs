//! The HTTP side of the fetcher: one shared client with the URL-safety resolver and redirect
//! policy, bounded body sizes, and short bodies treated as failures.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use url::Url;

use crate::error::HlsError;
use crate::playlist::ByteRange;
use crate::segment_body::{BodyAccumulator, SegmentBody, SpillTarget};
use crate::url_safety::{
    NetworkPolicy, UrlSafetyError, check_url, redact_url, redact_url_text, redirect_policy,
    resolver_for,
};

/// Most a body buffer reserves before bytes arrive.
const INITIAL_BODY_CAPACITY: u64 = 4 * 1024 * 1024;

/// Upper bounds for what a server may send.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub maximum_playlist_bytes: u64,
    pub maximum_segment_bytes: u64,
    /// An `EXT-X-MAP` init section (codec headers: kilobytes in practice).
    pub maximum_init_bytes: u64,
    pub maximum_key_bytes: u64,
    pub maximum_redirects: usize,
    pub connect_timeout: Duration,
    /// Longest pause between two chunks of a body.
    pub read_timeout: Duration,
    /// Longest time for a whole playlist or key request.
    pub small_request_timeout: Duration,
    /// Idle keep-alive connections kept per host. One client serves every recording of a worker,
    /// and many recordings of one origin (one CDN host) poll it every target duration: with too
    /// few kept, most requests open (and close) a new TCP connection, which costs more than the
    /// request itself. An idle connection is one that was in use, so the number kept never
    /// exceeds the peak of connections in use (already within the worker's descriptor budget);
    /// idle ones are closed after 90 s.
    pub maximum_idle_connections_per_host: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            maximum_playlist_bytes: 8 * 1024 * 1024,
            // 128 MiB is a 10 s segment at 100 Mbit/s; a track buffers a bounded number of them.
            maximum_segment_bytes: 128 * 1024 * 1024,
            maximum_init_bytes: 16 * 1024 * 1024,
            maximum_key_bytes: 1024,
            maximum_redirects: 5,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            small_request_timeout: Duration::from_secs(20),
            maximum_idle_connections_per_host: 4096,
        }
    }
}

/// What kind of resource a request fetches; picks the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Playlist,
    Segment,
    /// An `EXT-X-MAP` init section.
    Init,
    Key,
}

impl ResourceKind {
    fn describe(self) -> &'static str {
        match self {
            ResourceKind::Playlist => "playlist",
            ResourceKind::Segment => "segment",
            ResourceKind::Init => "init segment",
            ResourceKind::Key => "key",
        }
    }
}

/// One track's budget of bytes held in memory (segment bodies downloading and downloaded but not
/// yet committed): every chunk of a body is charged to it before it is kept, and given back when
/// the body is committed or dropped. The download at the head of the commit order is never
/// charged, so it can never be starved by the ones behind it (which wait for room instead).
#[derive(Debug, Clone)]
pub struct ByteBudget {
    semaphore: Arc<Semaphore>,
    /// Most bytes one chunk asks for at once (a chunk larger than the whole budget would
    /// otherwise wait for ever).
    largest_charge: u32,
}

impl ByteBudget {
    pub fn new(maximum_bytes: u64) -> Self {
        let permits = usize::try_from(maximum_bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            semaphore: Arc::new(Semaphore::new(permits)),
            largest_charge: u32::try_from(permits).unwrap_or(u32::MAX),
        }
    }

    /// Bytes of the budget not charged right now.
    pub fn available_bytes(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// What one download charges to its track's [`ByteBudget`]: `own_key` is its place in the commit
/// order, `head` the key at the head of that order now (it is not charged while they match).
#[derive(Debug)]
pub struct BudgetedDownload<K> {
    pub budget: ByteBudget,
    pub head: watch::Receiver<Option<K>>,
    pub own_key: K,
    charged: Option<OwnedSemaphorePermit>,
}

impl<K: PartialEq + Copy> BudgetedDownload<K> {
    pub fn new(budget: ByteBudget, head: watch::Receiver<Option<K>>, own_key: K) -> Self {
        BudgetedDownload {
            budget,
            head,
            own_key,
            charged: None,
        }
    }

    /// Waits until `bytes` more fit in the budget, or until this download is the head.
    async fn charge(&mut self, bytes: usize) {
        let wanted = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .min(self.budget.largest_charge);
        if wanted == 0 {
            return;
        }
        loop {
            if *self.head.borrow_and_update() == Some(self.own_key) {
                return;
            }
            let acquire = Arc::clone(&self.budget.semaphore).acquire_many_owned(wanted);
            let permit = tokio::select! {
                permit = acquire => permit,
                changed = self.head.changed() => {
                    if changed.is_err() {
                        // The track is gone: nobody will say this download is the head.
                        Arc::clone(&self.budget.semaphore).acquire_many_owned(wanted).await
                    } else {
                        continue;
                    }
                }
            };
            // The semaphore is never closed; a closed one charges nothing.
            if let Ok(permit) = permit {
                match &mut self.charged {
                    Some(charged) => charged.merge(permit),
                    None => self.charged = Some(permit),
                }
            }
            return;
        }
    }

    /// The bytes charged so far (this download then holds none); dropping it gives them back.
    pub fn take_charge(&mut self) -> BudgetCharge {
        BudgetCharge {
            permit: self.charged.take(),
        }
    }
}

/// Bytes charged to a [`ByteBudget`] by one body, given back when this is dropped.
#[derive(Debug, Default)]
pub struct BudgetCharge {
    permit: Option<OwnedSemaphorePermit>,
}

impl BudgetCharge {
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// A cheap-to-clone HTTP client shared by every recording of a process.
#[derive(Debug, Clone)]
pub struct HlsHttpClient {
    client: reqwest::Client,
    policy: NetworkPolicy,
    limits: FetchLimits,
}

/// A fetched body and the URL it finally came from (after redirects).
#[derive(Debug, Clone)]
pub struct FetchedBody {
    pub final_url: Url,
    pub body: Bytes,
}

/// A fetched body that may have spilled to a file, and the URL it finally came from.
#[derive(Debug)]
pub struct FetchedSegment {
    pub final_url: Url,
    pub body: SegmentBody,
}

impl FetchedSegment {
    /// The body of a fetch made without a spill target (always in memory).
    fn into_memory(self) -> Result<FetchedBody, HlsError> {
        match self.body {
            SegmentBody::Memory(body) => Ok(FetchedBody {
                final_url: self.final_url,
                body,
            }),
            SegmentBody::Spilled(_) => Err(HlsError::Io {
                path: std::path::PathBuf::new(),
                source: std::io::Error::other("a body spilled without a spill target"),
            }),
        }
    }
}

impl HlsHttpClient {
    pub fn new(policy: NetworkPolicy, limits: FetchLimits) -> Result<Self, HlsError> {
        let client = reqwest::Client::builder()
            .dns_resolver(resolver_for(policy))
            .redirect(redirect_policy(policy, limits.maximum_redirects))
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .no_proxy()
            .pool_max_idle_per_host(limits.maximum_idle_connections_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("streambot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| HlsError::ClientSetup {
                detail: error.to_string(),
            })?;
        Ok(HlsHttpClient {
            client,
            policy,
            limits,
        })
    }

    pub fn policy(&self) -> NetworkPolicy {
        self.policy
    }

    pub fn limits(&self) -> FetchLimits {
        self.limits
    }

    /// Fetches a playlist as text.
    pub async fn fetch_playlist(&self, url: &Url) -> Result<(Url, String), HlsError> {
        let fetched = self.fetch(url, ResourceKind::Playlist, None).await?;
        let text = String::from_utf8_lossy(&fetched.body).into_owned();
        Ok((fetched.final_url, text))
    }

    /// Fetches a whole resource or a byte range of it. Playlists and keys have the small-request
    /// timeout as a whole-request deadline; see [`HlsHttpClient::fetch_until`] for segments.
    pub async fn fetch(
        &self,
        url: &Url,
        kind: ResourceKind,
        byte_range: Option<ByteRange>,
    ) -> Result<FetchedBody, HlsError> {
        self.fetch_inner::<()>(url, kind, byte_range, None, None)
            .await
            .and_then(FetchedSegment::into_memory)
    }

    /// [`HlsHttpClient::fetch`] that gives up at `deadline` however the body trickles: a
    /// between-chunks timeout alone lets a server send one byte every few seconds for ever.
    pub async fn fetch_until(
        &self,
        url: &Url,
        kind: ResourceKind,
        byte_range: Option<ByteRange>,
        deadline: tokio::time::Instant,
    ) -> Result<FetchedBody, HlsError> {
        self.fetch_budgeted_until::<()>(url, kind, byte_range, deadline, None, None)
            .await
            .and_then(FetchedSegment::into_memory)
    }

    /// [`HlsHttpClient::fetch_until`] that charges every chunk kept in memory to `budget` before
    /// keeping it (waiting for room while the budget is full; the charge is left in `budget`),
    /// and moves a body that grows past `spill`'s threshold to a file.
    pub async fn fetch_budgeted_until<K: PartialEq + Copy>(
        &self,
        url: &Url,
        kind: ResourceKind,
        byte_range: Option<ByteRange>,
        deadline: tokio::time::Instant,
        budget: Option<&mut BudgetedDownload<K>>,
        spill: Option<&SpillTarget>,
    ) -> Result<FetchedSegment, HlsError> {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout_at(
            deadline,
            self.fetch_inner(url, kind, byte_range, budget, spill),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(HlsError::RequestDeadline {
                url: redact_url(url),
                seconds: deadline.saturating_duration_since(started).as_secs(),
            }),
        }
    }

    async fn fetch_inner<K: PartialEq + Copy>(
        &self,
        url: &Url,
        kind: ResourceKind,
        byte_range: Option<ByteRange>,
        mut budget: Option<&mut BudgetedDownload<K>>,
        spill: Option<&SpillTarget>,
    ) -> Result<FetchedSegment, HlsError> {
        check_url(url, self.policy)?;
        let limit = match kind {
            ResourceKind::Playlist => self.limits.maximum_playlist_bytes,
            ResourceKind::Segment => self.limits.maximum_segment_bytes,
            ResourceKind::Init => self.limits.maximum_init_bytes,
            ResourceKind::Key => self.limits.maximum_key_bytes,
        };
        let mut request = self.client.get(url.clone());
        if matches!(kind, ResourceKind::Playlist | ResourceKind::Key) {
            request = request.timeout(self.limits.small_request_timeout);
        }
        if let Some(range) = byte_range {
            request = request.header("Range", range_header_value(range));
        }
        let network_error = |error: reqwest::Error| {
            if error.is_timeout() {
                return self.timeout_error(url, kind);
            }
            HlsError::Network {
                url: redact_url(url),
                detail: describe_reqwest_error(&error),
            }
        };
        let mut response = request.send().await.map_err(|error| {
            if let Some(refusal) = find_url_refusal(&error) {
                return HlsError::UrlRefused(refusal);
            }
            network_error(error)
        })?;
        let status = response.status();
        if status.is_redirection() {
            // A redirect the client did not follow: its Location is not an http(s) URL (a
            // `file:` one, say), which is a refusal, not a server error to retry.
            return Err(refused_redirect(url, &response, self.policy));
        }
        if !status.is_success() {
            return Err(HlsError::HttpStatus {
                url: redact_url(url),
                status: status.as_u16(),
            });
        }
        let final_url = response.url().clone();
        let expected_length = response.content_length();
        // Where a 206 body starts in the resource (`Content-Range`); a 200 body starts at 0.
        let body_offset = if status == reqwest::StatusCode::PARTIAL_CONTENT {
            response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|value| content_range_start(value.as_bytes()))
        } else {
            Some(0)
        };
        if let Some(expected) = expected_length
            && expected > limit
        {
            return Err(HlsError::TooLarge {
                url: redact_url(url),
                what: kind.describe(),
                limit_bytes: limit,
            });
        }
        let spill_io_error = |source: std::io::Error| {
            let directory = spill
                .map(|target| target.directory.clone())
                .unwrap_or_default();
            crate::segment_body::spill_error(source, &directory, url)
        };
        // What the server announces is not believed up front: the buffer grows as bytes come.
        let mut body = BodyAccumulator::with_capacity(
            spill.cloned(),
            expected_length
                .unwrap_or(64 * 1024)
                .min(limit)
                .min(INITIAL_BODY_CAPACITY) as usize,
        );
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => {
                    // Our own deadline is not the server's short body.
                    if let Some(expected) = expected_length
                        && !error.is_timeout()
                    {
                        return Err(HlsError::ShortBody {
                            url: redact_url(url),
                            expected,
                            received: body.len(),
                        });
                    }
                    return Err(network_error(error));
                }
            };
            if body.len() + chunk.len() as u64 > limit {
                return Err(HlsError::TooLarge {
                    url: redact_url(url),
                    what: kind.describe(),
                    limit_bytes: limit,
                });
            }
            if let Some(budget) = budget.as_deref_mut()
                && body.keeps_in_memory(chunk.len())
            {
                budget.charge(chunk.len()).await;
            }
            if let Some(target) = spill
                && !body.keeps_in_memory(chunk.len())
            {
                // Past the threshold: room in the track's spill budget (at once for the head).
                let moved_from_memory = if body.is_spilled() { 0 } else { body.len() };
                target
                    .wait_for_room(moved_from_memory + chunk.len() as u64)
                    .await;
            }
            body.push(&chunk).map_err(spill_io_error)?;
        }
        if let Some(expected) = expected_length
            && body.len() < expected
        {
            return Err(HlsError::ShortBody {
                url: redact_url(url),
                expected,
                received: body.len(),
            });
        }
        let mut body = body.finish().map_err(spill_io_error)?;
        // A server that ignores Range sends the whole resource (200), one may answer 206 with
        // more or other bytes than asked (its `Content-Range` says which): cut the range out.
        if let Some(range) = byte_range
            && (body.len() > range.length || body_offset.is_some_and(|at| at != range.offset))
        {
            // A 206 without a readable `Content-Range` is taken to start where asked.
            let body_offset = body_offset.unwrap_or(range.offset);
            let wanted_end = range.offset.saturating_add(range.length);
            if body_offset > range.offset || body_offset.saturating_add(body.len()) < wanted_end {
                if status == reqwest::StatusCode::OK {
                    return Err(HlsError::ShortBody {
                        url: redact_url(url),
                        expected: wanted_end,
                        received: body.len(),
                    });
                }
                return Err(HlsError::RangeMismatch {
                    url: redact_url(url),
                    asked: format!("{}-{}", range.offset, wanted_end.saturating_sub(1)),
                    served: format!(
                        "{body_offset}-{}",
                        body_offset.saturating_add(body.len()).saturating_sub(1)
                    ),
                });
            }
            let start = range.offset - body_offset;
            let end = start.saturating_add(range.length);
            // Without a spill target nothing spills (the in-memory limit is unbounded), so
            // the directory is never written.
            let spill_target = spill.cloned().unwrap_or_else(|| SpillTarget {
                directory: std::path::PathBuf::from("."),
                file_prefix: "unused".to_string(),
                in_memory_limit: u64::MAX,
                budget: crate::segment_body::SpillBudget::unbounded(),
                head: None,
            });
            body = body
                .slice(start, end, &spill_target)
                .map_err(spill_io_error)?;
        }
        if let Some(range) = byte_range
            && body.len() < range.length
        {
            return Err(HlsError::ShortBody {
                url: redact_url(url),
                expected: range.length,
                received: body.len(),
            });
        }
        Ok(FetchedSegment { final_url, body })
    }
}

impl HlsHttpClient {
    /// Our own time limit ran out: a whole-request deadline for playlists and keys, the pause
    /// between two chunks for the others.
    fn timeout_error(&self, url: &Url, kind: ResourceKind) -> HlsError {
        match kind {
            ResourceKind::Playlist | ResourceKind::Key => HlsError::RequestDeadline {
                url: redact_url(url),
                seconds: self.limits.small_request_timeout.as_secs(),
            },
            ResourceKind::Segment | ResourceKind::Init => HlsError::Network {
                url: redact_url(url),
                detail: format!(
                    "no bytes arrived for {} s",
                    self.limits.read_timeout.as_secs()
                ),
            },
        }
    }
}

/// Why a redirect that was not followed is refused: where it points and what is wrong with it.
fn refused_redirect(url: &Url, response: &reqwest::Response, policy: NetworkPolicy) -> HlsError {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let reason = if location.is_empty() {
        "the redirect has no Location".to_string()
    } else {
        match url.join(&location) {
            Err(error) => format!("not a URL ({error})"),
            Ok(target) => match check_url(&target, policy) {
                Err(refusal) => refusal.to_string(),
                Ok(()) => "the redirect could not be followed".to_string(),
            },
        }
    };
    HlsError::UrlRefused(UrlSafetyError::RedirectRefused {
        url: redact_url(url),
        location: redact_url_text(&location),
        reason,
    })
}

/// The first byte of a `Content-Range: bytes <first>-<last>/<length>` header.
fn content_range_start(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let range = text.strip_prefix("bytes")?.trim_start();
    let (first, _) = range.split_once('-')?;
    first.trim().parse().ok()
}

/// `bytes=<first>-<last>` of a byte range from a playlist; offsets near `u64::MAX` saturate
/// instead of overflowing.
fn range_header_value(range: ByteRange) -> String {
    let last = range.offset.saturating_add(range.length.saturating_sub(1));
    format!("bytes={}-{}", range.offset, last)
}

fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    let mut depth = 0;
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
        if depth >= 4 {
            break;
        }
    }
    text
}

fn find_url_refusal(error: &reqwest::Error) -> Option<crate::url_safety::UrlSafetyError> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<crate::url_safety::UrlSafetyError>() {
            return Some(refusal.clone());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_budget_waits_until_the_download_is_the_head_and_bytes_come_back_on_drop() {
        let budget = ByteBudget::new(10);
        let (head, head_receiver) = watch::channel(Some(1u64));
        let mut behind = BudgetedDownload::new(budget.clone(), head_receiver.clone(), 2u64);
        behind.charge(8).await;
        assert_eq!(budget.available_bytes(), 2);
        // 8 more do not fit: it waits.
        let waiting = tokio::time::timeout(Duration::from_millis(50), behind.charge(8)).await;
        assert!(waiting.is_err());
        drop(behind);
        assert_eq!(budget.available_bytes(), 10);

        let mut second = BudgetedDownload::new(budget.clone(), head_receiver, 2u64);
        second.charge(8).await;
        let charge_of_the_body = second.take_charge();
        assert_eq!(charge_of_the_body.bytes(), 8);
        // At the head it is never charged, however full the budget is.
        head.send_replace(Some(2));
        tokio::time::timeout(Duration::from_secs(5), second.charge(1_000))
            .await
            .expect("the head is never charged");
        assert_eq!(budget.available_bytes(), 2);
        drop(charge_of_the_body);
        assert_eq!(budget.available_bytes(), 10);
        // Behind the head again: a chunk larger than the whole budget asks for all of it, not
        // for ever.
        head.send_replace(Some(1));
        tokio::time::timeout(Duration::from_secs(5), second.charge(1_000))
            .await
            .expect("charged at most the whole budget");
        assert_eq!(second.take_charge().bytes(), 10);
    }

    #[test]
    fn content_range_starts_are_read_and_nonsense_is_none() {
        assert_eq!(content_range_start(b"bytes 100-199/1000"), Some(100));
        assert_eq!(content_range_start(b" bytes  0-0/*"), Some(0));
        for nonsense in [
            &b"bytes */1000"[..],
            b"items 1-2/3",
            b"bytes -5/9",
            b"\xff",
            b"",
        ] {
            assert_eq!(content_range_start(nonsense), None);
        }
        assert_eq!(
            content_range_start(format!("bytes {}-1/2", u64::MAX).as_bytes()),
            Some(u64::MAX)
        );
        assert_eq!(content_range_start(b"bytes 18446744073709551616-1/2"), None);
    }

    #[test]
    fn range_headers_never_overflow() {
        assert_eq!(
            range_header_value(ByteRange {
                length: 100,
                offset: 50
            }),
            "bytes=50-149"
        );
        assert_eq!(
            range_header_value(ByteRange {
                length: u64::MAX,
                offset: u64::MAX
            }),
            format!("bytes={}-{}", u64::MAX, u64::MAX)
        );
    }

    /// One origin for the message tests: a playlist that stalls after a few bytes, redirects to
    /// `file:` and `ftp:`, and a plain playlist.
    async fn message_test_origin() -> String {
        use axum::body::Body;
        use axum::http::{StatusCode, Uri, header};
        use futures_util::StreamExt;
        let router = axum::Router::new().fallback(|uri: Uri| async move {
            let response = match uri.path() {
                "/stalls.m3u8" => {
                    let first = futures_util::stream::once(async {
                        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"#EXTM3U\n"))
                    });
                    axum::response::Response::builder()
                        .header(header::CONTENT_LENGTH, "1000")
                        .body(Body::from_stream(
                            first.chain(futures_util::stream::pending()),
                        ))
                }
                "/to-file.m3u8" => axum::response::Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, "file:///etc/passwd")
                    .body(Body::empty()),
                "/to-ftp.m3u8" => axum::response::Response::builder()
                    .status(StatusCode::MOVED_PERMANENTLY)
                    .header(header::LOCATION, "ftp://127.0.0.1/live.m3u8")
                    .body(Body::empty()),
                _ => axum::response::Response::builder()
                    .body(Body::from("#EXTM3U\n#EXT-X-TARGETDURATION:1\n")),
            };
            response.unwrap_or_default()
        });
        let address = streambot_testkit::hostile::serve_on_loopback(router)
            .await
            .expect("origin");
        format!("127.0.0.1:{}", address.port())
    }

    fn message_test_client() -> HlsHttpClient {
        let limits = FetchLimits {
            small_request_timeout: Duration::from_millis(300),
            ..FetchLimits::default()
        };
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, limits).expect("client")
    }

    #[tokio::test]
    async fn our_own_playlist_timeout_is_not_a_short_body() {
        let host = message_test_origin().await;
        let url = Url::parse(&format!("http://{host}/stalls.m3u8")).expect("url");
        let error = message_test_client()
            .fetch_playlist(&url)
            .await
            .expect_err("the playlist never completes");
        assert!(
            matches!(error, HlsError::RequestDeadline { seconds: 0, .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("did not arrive within its deadline"),
            "{text}"
        );
        assert!(
            !text.contains("bytes before the connection ended"),
            "{text}"
        );
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn a_redirect_to_a_refused_scheme_is_a_specific_refusal_not_http_302() {
        let host = message_test_origin().await;
        let client = message_test_client();
        for (path, location) in [
            ("to-file.m3u8", "file:///etc/passwd"),
            ("to-ftp.m3u8", "ftp://127.0.0.1/live.m3u8"),
        ] {
            let url = Url::parse(&format!("http://{host}/{path}")).expect("url");
            let error = client
                .fetch_playlist(&url)
                .await
                .expect_err("the redirect is refused");
            assert!(
                matches!(
                    error,
                    HlsError::UrlRefused(UrlSafetyError::RedirectRefused { .. })
                ),
                "{path}: {error:?}"
            );
            let text = error.user_message();
            assert!(text.contains("redirects to a refused address"), "{text}");
            assert!(text.contains(location), "{text}");
            assert!(!text.contains("HTTP 30"), "{text}");
            assert!(!error.is_retryable(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_capitalised_scheme_is_fetched_as_http() {
        let host = message_test_origin().await;
        let url = Url::parse(&format!("HTTP://{host}/live.m3u8")).expect("url");
        let (final_url, text) = message_test_client()
            .fetch_playlist(&url)
            .await
            .expect("fetched");
        assert_eq!(final_url.scheme(), "http");
        assert!(text.starts_with("#EXTM3U"));
    }
}
