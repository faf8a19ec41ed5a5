//! DoH over HTTP/1.1 (and HTTP/2 by prior knowledge, for clients that skip ALPN) through
//! hyper. Clients that negotiate `h2` are served by the lean `http2` module instead; both use
//! the same request meaning (`answer.rs`). A connection with no traffic for
//! `[tls] idle_timeout_secs` is closed gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::answer::{self, MAX_MESSAGE};
use crate::server::encrypted::Encrypted;
use crate::server::web::{self, Reply};

/// Serves one connection's requests (HTTP/2 or HTTP/1.1, whichever the client speaks).
pub async fn connection<S>(
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

/// Answers one request: reads the body (bounded), then asks the shared DoH logic.
async fn respond(
    shared: &Encrypted,
    request: Request<Incoming>,
    src: SocketAddr,
) -> http::Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let body = match Limited::new(body, MAX_MESSAGE).collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(_) => {
            return to_hyper(web::Response::plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "message too large",
            ));
        }
    };
    let request = web::Request {
        method: head.method,
        target: head
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        content_type: head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let response = match answer::answer(shared, request, src) {
        Reply::Now(response) => response,
        Reply::Later(later) => later.await,
    };
    to_hyper(response)
}

fn to_hyper(response: web::Response) -> http::Response<Full<Bytes>> {
    let mut out = http::Response::new(Full::new(response.body));
    *out.status_mut() = response.status;
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
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
