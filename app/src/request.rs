//! One parsed request: its parts, its body (read on demand, bounded in size and time) and who sent it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{header, HeaderMap, Method, StatusCode};

use crate::server::State;

/// One parsed request.
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Peer address.
    pub remote: Option<SocketAddr>,
    /// The body, once read by [`Request::read_body`] (empty before, and for GET).
    pub body: Bytes,
    /// The body as it arrives, until read (in a mutex only so that `&Request` is `Send`).
    pub stream: std::sync::Mutex<Option<BodyStream>>,
}

/// A request body as it arrives.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

impl Request {
    /// Value of a header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the body into [`Request::body`]: at most `limit` bytes (413 above it) within
    /// `timeout` (408 after it).
    pub async fn read_body(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> Result<(), crate::routes::PageError> {
        use crate::routes::PageError;
        let pending = self.stream.get_mut().map(Option::take).unwrap_or(None);
        let Some(stream) = pending else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, read_body(&self.headers, stream, limit)).await {
            Ok(Ok(b)) => {
                self.body = b;
                Ok(())
            }
            Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => Err(PageError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The request body is too large (the limit here is {} KiB).",
                    limit / 1024
                ),
            )),
            Ok(Err(code)) => Err(PageError::Status(
                code,
                "The request body could not be read.".into(),
            )),
            Err(_) => Err(PageError::Status(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} s.",
                    timeout.as_secs()
                ),
            )),
        }
    }

    /// Query parameters.
    pub fn query_map(&self) -> HashMap<String, String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.query)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

/// Largest body drained (and discarded) so that an oversized upload still gets a clean 413.
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;

async fn read_body(
    headers: &HeaderMap,
    body: BodyStream,
    limit: usize,
) -> Result<Bytes, StatusCode> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_DRAIN_BYTES) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut out = BytesMut::new();
    let mut seen = 0usize;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        seen += chunk.remaining();
        if seen > MAX_DRAIN_BYTES {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        if seen > limit {
            chunk.advance(chunk.remaining());
            continue;
        }
        while chunk.has_remaining() {
            let c = chunk.chunk();
            let n = c.len();
            out.extend_from_slice(c);
            chunk.advance(n);
        }
    }
    if seen > limit {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    Ok(out.freeze())
}

/// The client's address and whether the original request used TLS, believing
/// `X-Forwarded-For`/`-Proto` only from trusted proxies.
pub fn client_info(st: &State, req: &Request) -> (IpAddr, bool) {
    let peer = req
        .remote
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let trusted = |ip: &IpAddr| st.config.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return (peer, false);
    }
    let secure = req
        .header("x-forwarded-proto")
        .map(|p| {
            p.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("https")
        })
        .unwrap_or(false);
    let mut client = peer;
    if let Some(xff) = req.header("x-forwarded-for") {
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    (client, secure)
}
