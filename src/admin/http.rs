//! The admin listener's HTTP: axum routes on hyper, one connection per task inside the
//! listener's slots (`server/slots.rs`), every limit set here. Handlers see a [`Request`]
//! (method, path, decoded query, headers) and answer a [`Response`]; this module turns both
//! into and out of axum's types.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::server::slots::{DeadlineIo, Slot, drive_http};

/// Time a client gets to send a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (and buffered body) accepted.
pub const MAX_BUF: usize = 16 * 1024;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// An admin connection with no completed request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

/// The client's address, put into every request's extensions by [`connection`].
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A request as the admin handlers read it.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The handlers' view of a request head.
    pub fn of<B>(request: &http::Request<B>) -> Request {
        Request {
            method: request.method().as_str().to_string(),
            path: request.uri().path().to_string(),
            query: form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path and query as the client sent them (decoded and encoded again).
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        format!("{}?{query}", self.path)
    }

    /// Every value of a query parameter given more than once, in order.
    pub fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter, if given and not empty.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A response to send.
#[derive(Debug)]
pub struct Response {
    /// Status line text, e.g. `200 OK`.
    pub status: &'static str,
    /// Content type.
    pub content_type: &'static str,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
    /// A body produced while it is sent (an export), in place of `body`.
    pub stream: Option<Body>,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into(),
            stream: None,
        }
    }

    /// A JSON response.
    pub fn json(status: &'static str, body: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: format!("{body}\n"),
            stream: None,
        }
    }

    /// A response whose body is produced while it is sent.
    pub fn streamed(status: &'static str, content_type: &'static str, stream: Body) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: String::new(),
            stream: Some(stream),
        }
    }

    /// A JSON error: `{"error": message}`.
    pub fn error(status: &'static str, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> axum::response::Response {
        let status = self
            .status
            .split(' ')
            .next()
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| http::StatusCode::from_u16(code).ok())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = match self.stream {
            Some(stream) => stream,
            None => Body::from(self.body),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        for line in &self.headers {
            if let Some((name, value)) = line.split_once(':')
                && let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.trim().as_bytes()),
                    http::HeaderValue::from_str(value.trim()),
                )
            {
                headers.append(name, value);
            }
        }
        response
    }
}

/// Serves one admin connection with `router` until the client closes it, it completes no
/// request for [`IDLE`], its slot is taken for a newcomer, or the server shuts down. Writes
/// the client does not take within `write_timeout` end it.
pub async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    router: axum::Router,
    slot: Slot,
    write_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let progress = slot.progress_handle();
    let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
        request.extensions_mut().insert(Peer(peer));
        let router = router.clone();
        let progress = progress.clone();
        async move {
            let response = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            progress.touch();
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let io = TokioIo::new(DeadlineIo::new(stream, write_timeout));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    drive_http(
        connection,
        |c| c.graceful_shutdown(),
        &slot,
        IDLE,
        &mut shutdown,
    )
    .await;
}

/// The peer address of a request (set by [`connection`]).
pub fn peer_of<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    request.extensions().get::<Peer>().map(|p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_view_has_decoded_query_and_lowercase_headers() {
        let request = http::Request::builder()
            .uri("/api/hits?school=th-kim-dong&since=2026-11-01&client=10.0.0.1&q=a%20b+c")
            .header("Authorization", "Bearer abc")
            .body(Body::empty())
            .unwrap();
        let r = Request::of(&request);
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/api/hits"));
        assert_eq!(r.param("school"), Some("th-kim-dong"));
        assert_eq!(r.param("q"), Some("a b c"));
        assert_eq!(r.param("missing"), None);
        assert_eq!(r.header("authorization"), Some("Bearer abc"));
    }
}
