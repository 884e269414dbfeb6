//! DNS over HTTPS listeners (RFC 8484) on HTTP/2 (hyper), after the TLS
//! handshake of [`tls_listener`](crate::edge::server::tls). One path,
//! `/dns-query`: GET with the query in `?dns=` (base64url, RFC 8484 §4.1)
//! and POST with an `application/dns-message` body. Each query goes through
//! the same request path as TCP ([`ServeContext::answer_stream`]). Each
//! response ends its TLS record (`response_records`), for clients that
//! read one answer per record.
//!
//! HTTP errors as RFC 8484 §4.2.1 expects: 404 for another path, 405 for
//! another method, 415 for another content type, 413 for a body over 65535
//! octets, 400 for a missing or undecodable `dns` parameter or a message
//! that gets no answer (a response, a runt). A DNS failure is still 200.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::BufWriter;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::response_records::ResponseRecords;
use super::tls;
use crate::edge::server::{self, ServeContext};
use crate::edge::transport::Transport;

/// The DoH path (RFC 8484 §4.1's example, what clients assume by default;
/// announced in DDR as `dohpath=/dns-query{?dns}`).
pub(crate) const DOH_PATH: &str = "/dns-query";

/// The media type of DNS messages over HTTP (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";

/// Largest DNS message accepted in a POST body.
const MAX_MESSAGE: usize = 65535;

/// Streams one client may have open at once on a connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// Serves DoH on a TCP listener: TLS, then HTTP/2, for each connection.
pub(crate) async fn serve(
    listener: TcpListener,
    context: ServeContext,
    acceptor: TlsAcceptor,
    idle_timeout: Duration,
) {
    server::accept_connections(listener, context, move |stream, client, context| {
        let acceptor = acceptor.clone();
        async move {
            super::tcp::accepted_without_nagle(&stream)?;
            // TLS writes are gathered below the TLS layer and sent at each
            // flush of hyper's: the records `ResponseRecords` asks for cost
            // no extra socket writes.
            let stream = tls::handshake(&acceptor, BufWriter::new(stream), idle_timeout).await?;
            let io = ResponseRecords::new(TokioIo::new(stream));
            serve_http2(io, client, context, idle_timeout).await
        }
    })
    .await;
}

/// Serves HTTP/2 requests on one connection until the client closes it, it
/// has had no request in progress for `idle_timeout`, or the server stops;
/// then it is closed gracefully (GOAWAY; requests in progress finish).
async fn serve_http2<Io>(
    io: Io,
    client: SocketAddr,
    context: ServeContext,
    idle_timeout: Duration,
) -> io::Result<()>
where
    Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let stop = context.clone();
    let activity = Arc::new(Activity::new());
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let context = context.clone();
        let busy = service_activity.begin();
        async move {
            let response = answer(request, client, &context).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result.map_err(io::Error::other),
        () = activity.idle_for(idle_timeout) => {}
        () = stop.stopping() => {}
    }
    connection.as_mut().graceful_shutdown();
    match tokio::time::timeout(idle_timeout, connection).await {
        Ok(result) => result.map_err(io::Error::other),
        Err(_) => Ok(()), // the client never closed: dropping the connection closes it
    }
}

/// Requests in progress on one connection, and when the last one ended.
struct Activity {
    in_progress: AtomicUsize,
    last_end: std::sync::Mutex<Instant>,
    changed: tokio::sync::Notify,
}

/// Held while one request is answered.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            in_progress: AtomicUsize::new(0),
            last_end: std::sync::Mutex::new(Instant::now()),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        Busy(Arc::clone(self))
    }

    fn last_end(&self) -> Instant {
        *self
            .last_end
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            if self.in_progress.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            let deadline = self.last_end() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = changed => {}
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self
            .0
            .last_end
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// Answers one HTTP request.
async fn answer(
    request: Request<Incoming>,
    client: SocketAddr,
    context: &ServeContext,
) -> Response<Full<Bytes>> {
    if request.uri().path() != DOH_PATH {
        return status(StatusCode::NOT_FOUND);
    }
    let query = match *request.method() {
        Method::GET => match dns_parameter(request.uri().query()) {
            Some(query) => query,
            None => return status(StatusCode::BAD_REQUEST),
        },
        Method::POST => {
            let is_dns_message = request
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                == Some(DNS_MESSAGE);
            // The body is read before any answer, even a refusal: answering
            // while the client still sends makes HTTP/2 reset the stream, and
            // some clients (curl) then report the reset, not the status.
            let body = match Limited::new(request.into_body(), MAX_MESSAGE)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes().to_vec(),
                Err(_) => return status(StatusCode::PAYLOAD_TOO_LARGE),
            };
            if !is_dns_message {
                return status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            body
        }
        _ => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
    };
    let Some(message) = context
        .answer_stream(&query, client, Transport::Https)
        .await
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    let max_age = freshness(&message);
    let mut response = Response::new(Full::new(Bytes::from(message)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Some(seconds) = max_age {
        if let Ok(value) = HeaderValue::from_str(&format!("max-age={seconds}")) {
            headers.insert(CACHE_CONTROL, value);
        }
    }
    response
}

/// The DNS message in a GET request's `dns` parameter: base64url without
/// padding (RFC 8484 §4.1; padding is tolerated).
fn dns_parameter(query: Option<&str>) -> Option<Vec<u8>> {
    let encoded = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("dns="))?
        .trim_end_matches('=');
    data_encoding::BASE64URL_NOPAD
        .decode(encoded.as_bytes())
        .ok()
}

/// The HTTP freshness of an answer: the smallest TTL of its answer and
/// authority records (RFC 8484 §5.1); none when it has no records.
fn freshness(message: &[u8]) -> Option<u32> {
    let message = hickory_proto::op::Message::from_vec(message).ok()?;
    message
        .answers
        .iter()
        .chain(&message.authorities)
        .map(|record| record.ttl)
        .min()
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_parameter_decodes_base64url() {
        // RFC 8484 §4.1.1's example: www.example.com A, ID 0.
        let example = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let decoded = dns_parameter(Some(&format!("dns={example}"))).expect("decodes");
        assert_eq!(decoded.len(), 33);
        assert_eq!(&decoded[12..17], b"\x03www\x07");
        let cases: [(&str, Option<&str>, bool); 5] = [
            (
                "after another parameter",
                Some("ct=x&dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB"),
                true,
            ),
            (
                "with padding",
                Some("dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB=="),
                true,
            ),
            ("no query string", None, false),
            ("no dns parameter", Some("name=example.com"), false),
            ("not base64url", Some("dns=AA+/"), false),
        ];
        for (case, query, decodes) in cases {
            assert_eq!(dns_parameter(query).is_some(), decodes, "{case}");
        }
    }
}
