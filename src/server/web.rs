//! Complete HTTP requests and responses as the DoH answering logic sees them, whichever HTTP
//! version hyper spoke.
//!
//! The DoH logic answers a complete [`Request`] either at once ([`Reply::Now`]: blocks, cache
//! hits, setup pages, errors) or with a future ([`Reply::Later`]: a query waiting on an
//! upstream), so the common case costs no task and no allocation for a future.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Method, StatusCode};

/// A complete request: head and body.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request target: path and query, as sent.
    pub target: String,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// The body (empty for GET).
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query string without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// A complete response. `Content-Length` is added by the transport.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// Header names (any case; HTTP/2 lowercases them) and values.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A response with `status`, one `Content-Type` and `body`.
    pub fn new(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![("content-type", content_type.to_string())],
            body: body.into(),
        }
    }

    /// A short plain-text response.
    pub fn plain(status: StatusCode, text: &'static str) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            Bytes::from_static(text.as_bytes()),
        )
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response to come.
pub type Later = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// What a service gives back for a request.
pub enum Reply {
    /// Answered at once.
    Now(Response),
    /// Answered when the future completes (the transport runs it in its own task).
    Later(Later),
}
