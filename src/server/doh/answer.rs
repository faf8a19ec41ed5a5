//! What a DoH request means, whichever HTTP version carried it: `/dns-query[/<token>]` with
//! `GET ?dns=` or `POST application/dns-message` (RFC 8484 §4.1), the setup pages, or 404.
//! Answers that need no upstream are made at once; the rest become a future.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};

use crate::query::{Handled, Origin, Protocol};
use crate::server::encrypted::Encrypted;
use crate::server::web::{Reply, Request, Response};

/// The DNS message media type.
pub const DNS_MESSAGE: &str = "application/dns-message";
/// Largest DNS message accepted (the TCP framing limit).
pub const MAX_MESSAGE: usize = 65_535;

/// Answers one request.
pub fn answer(shared: &Encrypted, request: Request, src: SocketAddr) -> Reply {
    if let Some(token) = dns_query_token(request.path()) {
        let token = token.map(str::to_ascii_lowercase);
        return dns_query(shared, &request, src, token.as_deref());
    }
    if request.method == Method::GET
        && let Some(page) = shared.setup.get(request.path())
    {
        let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::OK);
        let mut response = Response::new(status, page.content_type, page.body.clone())
            .with_header("cache-control", "no-store");
        response.headers.extend(page.headers());
        return Reply::Now(response);
    }
    Reply::Now(Response::plain(StatusCode::NOT_FOUND, "not found"))
}

/// `Some(token)` for `/dns-query/<token>`, `Some(None)` for `/dns-query`, `None` otherwise.
pub fn dns_query_token(path: &str) -> Option<Option<&str>> {
    let rest = path.strip_prefix("/dns-query")?;
    match rest {
        "" | "/" => Some(None),
        _ => {
            let token = rest.strip_prefix('/')?.trim_end_matches('/');
            (!token.contains('/')).then_some(Some(token))
        }
    }
}

/// RFC 8484 §4.1: the DNS message in a GET's `dns` parameter (base64url; padding is not sent
/// but tolerated), or why there is none.
pub fn parse_get_message(query: &str) -> Result<Vec<u8>, &'static str> {
    let dns = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "dns")
        .map(|(_, v)| v)
        .ok_or("missing dns parameter")?;
    match URL_SAFE_NO_PAD.decode(dns.trim_end_matches('=')) {
        Ok(bytes) if bytes.len() <= MAX_MESSAGE => Ok(bytes),
        _ => Err("dns parameter is not base64url"),
    }
}

/// RFC 8484 §4.1: the DNS message from `?dns=` (GET) or the body (POST).
fn dns_query(shared: &Encrypted, request: &Request, src: SocketAddr, token: Option<&str>) -> Reply {
    let is_get = request.method == Method::GET;
    let decoded;
    let message: &[u8] = match request.method {
        Method::GET => {
            decoded = match parse_get_message(request.query()) {
                Ok(bytes) => bytes,
                Err(why) => return now(StatusCode::BAD_REQUEST, why),
            };
            &decoded
        }
        Method::POST => {
            let media = request.content_type.as_deref().unwrap_or("");
            if !media.eq_ignore_ascii_case(DNS_MESSAGE) {
                return now(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "expected application/dns-message",
                );
            }
            if request.body.len() > MAX_MESSAGE {
                return now(StatusCode::PAYLOAD_TOO_LARGE, "message too large");
            }
            &request.body
        }
        _ => {
            return Reply::Now(
                Response::plain(StatusCode::METHOD_NOT_ALLOWED, "GET or POST\n")
                    .with_header("allow", "GET, POST"),
            );
        }
    };
    let origin = Origin {
        addr: src,
        protocol: Protocol::Doh,
        token,
    };
    match shared.pipeline.handle_now_from(message, origin) {
        Handled::Done(answer) => Reply::Now(dns_response(answer, is_get)),
        Handled::Pending(pending) => {
            let pipeline = Arc::clone(&shared.pipeline);
            Reply::Later(Box::pin(async move {
                dns_response(pipeline.finish(pending).await, is_get)
            }))
        }
    }
}

/// The HTTP response carrying `answer` (`None`: the message was not a DNS query).
fn dns_response(answer: Option<Vec<u8>>, is_get: bool) -> Response {
    let Some(answer) = answer else {
        return Response::plain(StatusCode::BAD_REQUEST, "not a DNS query");
    };
    // RFC 8484 §5.1: a GET answer may be cached for its smallest TTL. Each family has its own
    // URL, so a shared cache cannot hand one family's answer to another.
    let ttl = if is_get { min_ttl(&answer) } else { None };
    let response = Response::new(StatusCode::OK, DNS_MESSAGE, answer);
    match ttl {
        Some(ttl) => response.with_header("cache-control", format!("max-age={ttl}")),
        None => response,
    }
}

fn now(status: StatusCode, text: &'static str) -> Reply {
    Reply::Now(Response::plain(status, text))
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
