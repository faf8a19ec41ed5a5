//! The DNS-over-HTTPS front end (RFC 8484) over HTTP/2 and HTTP/1.1, which also serves the
//! setup pages on the hostname parents already use. Transport only: DNS messages go to the
//! same handler as every other front end.
//!
//! Paths: `/dns-query/<token>` (and `/dns-query`, which carries no token and is refused or
//! given `[devices] default_profile`) with `GET ?dns=<base64url>` or `POST` of
//! `application/dns-message`; `/setup/<token>`; `/apple/<token>.mobileconfig`. A connection
//! with no traffic for `[tls] idle_timeout_secs` is closed gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::encrypted::Encrypted;
use super::handler::{Origin, Protocol};

/// The DNS message media type.
const DNS_MESSAGE: &str = "application/dns-message";
/// Largest DNS message accepted (the TCP framing limit).
const MAX_MESSAGE: usize = 65_535;

/// Accepts DoH connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Encrypted>,
    shutdown: watch::Receiver<bool>,
) {
    shared.serve(listener, acceptor, shutdown, connection).await;
}

/// Serves one connection's requests (HTTP/2 or HTTP/1.1, whichever the client speaks).
pub(crate) async fn connection<S>(
    io: S,
    src: SocketAddr,
    shared: Arc<Encrypted>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let last_active = Arc::new(AtomicU64::new(0));
    let io = Activity {
        inner: io,
        started,
        last_active: Arc::clone(&last_active),
    };
    let service_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, Infallible>(respond(&shared, request, src).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle = Duration::from_secs(shared.idle_secs());
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = shutdown.wait_for(|&s| s), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(idle / 2), if !closing => {
                let quiet = started.elapsed().as_secs() - last_active.load(Ordering::Relaxed);
                if quiet >= idle.as_secs() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            // A client that ignores the graceful close is cut off.
            _ = tokio::time::sleep(Duration::from_secs(5)), if closing => return,
        }
    }
}

/// Answers one request.
async fn respond(
    shared: &Encrypted,
    request: Request<Incoming>,
    src: SocketAddr,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    if let Some(token) = dns_query_token(&path) {
        let token = token.map(str::to_ascii_lowercase);
        return dns_query(shared, request, src, token.as_deref()).await;
    }
    if request.method() == Method::GET
        && let Some(page) = shared.setup.get(&path)
    {
        let mut response = Response::builder()
            .status(page.status)
            .header(header::CONTENT_TYPE, page.content_type)
            .header(header::CACHE_CONTROL, "no-store");
        for (name, value) in page.headers() {
            response = response.header(name, value);
        }
        return response
            .body(Full::new(Bytes::from(page.body)))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "error"));
    }
    plain(StatusCode::NOT_FOUND, "not found")
}

/// `Some(token)` for `/dns-query/<token>`, `Some(None)` for `/dns-query`, `None` otherwise.
fn dns_query_token(path: &str) -> Option<Option<&str>> {
    let rest = path.strip_prefix("/dns-query")?;
    match rest {
        "" | "/" => Some(None),
        _ => {
            let token = rest.strip_prefix('/')?.trim_end_matches('/');
            (!token.contains('/')).then_some(Some(token))
        }
    }
}

/// RFC 8484 §4.1: the DNS message from `?dns=` (GET) or the body (POST).
async fn dns_query(
    shared: &Encrypted,
    request: Request<Incoming>,
    src: SocketAddr,
    token: Option<&str>,
) -> Response<Full<Bytes>> {
    let is_get = request.method() == Method::GET;
    let message: Vec<u8> = match *request.method() {
        Method::GET => {
            let query = request.uri().query().unwrap_or("");
            let Some(dns) = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "dns")
                .map(|(_, v)| v.into_owned())
            else {
                return plain(StatusCode::BAD_REQUEST, "missing dns parameter");
            };
            // Padding is not sent (RFC 8484 §4.1) but tolerated.
            match URL_SAFE_NO_PAD.decode(dns.trim_end_matches('=')) {
                Ok(bytes) if bytes.len() <= MAX_MESSAGE => bytes,
                _ => return plain(StatusCode::BAD_REQUEST, "dns parameter is not base64url"),
            }
        }
        Method::POST => {
            let media = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !media.eq_ignore_ascii_case(DNS_MESSAGE) {
                return plain(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "expected application/dns-message",
                );
            }
            match Limited::new(request.into_body(), MAX_MESSAGE)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes().to_vec(),
                Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "message too large"),
            }
        }
        _ => {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, POST")
                .body(Full::new(Bytes::from_static(b"GET or POST\n")))
                .unwrap_or_else(|_| plain(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"));
        }
    };
    let origin = Origin {
        addr: src,
        protocol: Protocol::Doh,
        token,
    };
    let Some(answer) = shared.handler.handle_from(&message, origin).await else {
        return plain(StatusCode::BAD_REQUEST, "not a DNS query");
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, DNS_MESSAGE);
    // RFC 8484 §5.1: a GET answer may be cached for its smallest TTL. Each family has its own
    // URL, so a shared cache cannot hand one family's answer to another.
    if is_get && let Some(ttl) = min_ttl(&answer) {
        response = response.header(header::CACHE_CONTROL, format!("max-age={ttl}"));
    }
    response
        .body(Full::new(Bytes::from(answer)))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "error"))
}

/// The smallest TTL of the answer and authority records; `None` without any.
fn min_ttl(answer: &[u8]) -> Option<u32> {
    let message = hickory_proto::op::Message::from_vec(answer).ok()?;
    message
        .answers()
        .iter()
        .chain(message.name_servers())
        .map(|r| r.ttl())
        .min()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Wraps a connection to note when it last moved bytes, in whole seconds since it opened.
struct Activity<S> {
    inner: S,
    started: Instant,
    last_active: Arc<AtomicU64>,
}

impl<S> Activity<S> {
    fn touch(&self) {
        self.last_active
            .store(self.started.elapsed().as_secs(), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_query_paths_carry_the_token() {
        assert_eq!(dns_query_token("/dns-query"), Some(None));
        assert_eq!(dns_query_token("/dns-query/"), Some(None));
        assert_eq!(dns_query_token("/dns-query/abc"), Some(Some("abc")));
        assert_eq!(dns_query_token("/dns-query/abc/"), Some(Some("abc")));
        assert_eq!(dns_query_token("/dns-query/a/b"), None);
        assert_eq!(dns_query_token("/dns-queryx"), None);
        assert_eq!(dns_query_token("/setup/abc"), None);
    }
}
