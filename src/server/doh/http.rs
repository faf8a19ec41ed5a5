//! DoH over HTTP/2 and HTTP/1.1 through hyper (h2 underneath), with every limit that faces the
//! network set here explicitly. Requests mean the same whichever version carried them
//! (`answer.rs`).
//!
//! A connection's idle time counts from its last *progress*: a response body handed to the
//! transport (`ProgressBody`), not bytes. A client that leaves a stream unfinished, keeps the
//! flow-control window at zero or trickles frames makes no progress and is closed after
//! `[tls] idle_timeout_secs`; one that stops reading hits the write deadline (`DeadlineIo`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::answer::{self, MAX_MESSAGE};
use crate::server::encrypted::Encrypted;
use crate::server::slots::{DeadlineIo, Progress, Slot, drive_http};
use crate::server::web::{self, Reply};

/// HTTP/2 streams one connection may have open at once (RFC 9113 §6.5.2 suggests ≥ 100).
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Largest header list accepted (HPACK-decoded), for HTTP/2; also bounds CONTINUATION frames,
/// which h2 counts against it.
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Streams the client may reset before the server accepts them (the "rapid reset" attack,
/// CVE-2023-44487); beyond it the connection is closed with GOAWAY.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset for protocol errors before it closes the connection.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 64;
/// Bytes buffered per stream for sending (a DNS answer is at most 64 KiB).
pub const MAX_SEND_BUF_SIZE: usize = 64 * 1024;
/// Flow-control windows we grant: one whole DNS message per stream, a few per connection.
pub const STREAM_WINDOW: u32 = 64 * 1024;
/// See [`STREAM_WINDOW`].
pub const CONNECTION_WINDOW: u32 = 256 * 1024;
/// Largest frame we accept (the protocol's minimum maximum).
pub const MAX_FRAME_SIZE: u32 = 16 * 1024;
/// HTTP/1.1: time to send a request head, and the head's size.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`HEADER_READ_TIMEOUT`].
pub const MAX_HTTP1_BUF: usize = 64 * 1024;

/// The hyper connection builder with every limit set.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HTTP1_BUF)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .max_send_buf_size(MAX_SEND_BUF_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .keep_alive_interval(None);
    builder
}

/// Serves one connection's requests (HTTP/2 or HTTP/1.1, whichever the client speaks) until
/// it closes, makes no progress for the idle timeout, gives its slot to a newcomer, or the
/// server shuts down.
pub async fn connection<S>(
    io: S,
    src: SocketAddr,
    shared: Arc<Encrypted>,
    slot: Slot,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = DeadlineIo::new(io, shared.write_timeout());
    let progress = slot.progress_handle();
    let service_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        let progress = progress.clone();
        async move { Ok::<_, Infallible>(respond(&shared, request, src, progress).await) }
    });
    let builder = builder();
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let idle = Duration::from_secs(shared.idle_secs());
    drive_http(
        connection,
        |c| c.graceful_shutdown(),
        &slot,
        idle,
        &mut shutdown,
    )
    .await;
}

/// Answers one request: reads the body (bounded), then asks the shared DoH logic.
async fn respond(
    shared: &Encrypted,
    request: Request<Incoming>,
    src: SocketAddr,
    progress: Progress,
) -> http::Response<ProgressBody> {
    let (head, body) = request.into_parts();
    let body = match Limited::new(body, MAX_MESSAGE).collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(_) => {
            return to_hyper(
                web::Response::plain(StatusCode::PAYLOAD_TOO_LARGE, "message too large"),
                progress,
            );
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
    to_hyper(response, progress)
}

fn to_hyper(response: web::Response, progress: Progress) -> http::Response<ProgressBody> {
    let mut out = http::Response::new(ProgressBody {
        inner: Full::new(response.body),
        progress,
    });
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

/// A response body that notes progress when the transport takes its data: hyper polls a body
/// only when flow control lets it send, so a client holding the window at zero makes none.
pub struct ProgressBody {
    inner: Full<Bytes>,
    progress: Progress,
}

impl Body for ProgressBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(Some(Ok(_)))) {
            self.progress.touch();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
