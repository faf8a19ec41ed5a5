//! One entry of `[upstream] servers`: where to forward, and over which transport.
//!
//! - `ip:port` or `ip` (port 53): plain DNS over UDP, TCP when an answer is truncated;
//! - `tls://ip[:port]@name` (port 853): DNS over TLS (RFC 7858), the certificate checked
//!   against `name`, e.g. `tls://1.1.1.1@one.one.one.one`;
//! - `https://ip[:port]@name[/path]` (port 443, path `/dns-query`): DNS over HTTPS (RFC 8484)
//!   over HTTP/2, e.g. `https://1.1.1.1@cloudflare-dns.com/dns-query`.
//!
//! The address is given, not looked up: a resolver must not depend on resolving its own
//! upstream's name. Without `@name`, the certificate must name the address itself.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// An upstream resolver and its transport.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum UpstreamServer {
    /// Plain DNS.
    Plain(SocketAddr),
    /// DNS over TLS to `addr`, the certificate checked against `name`.
    Tls {
        /// Where to connect.
        addr: SocketAddr,
        /// The TLS server name.
        name: String,
    },
    /// DNS over HTTPS (HTTP/2) to `addr`, the certificate checked against `name`.
    Https {
        /// Where to connect.
        addr: SocketAddr,
        /// The TLS server name and HTTP authority.
        name: String,
        /// The request path, e.g. `/dns-query`.
        path: String,
    },
}

impl UpstreamServer {
    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        match self {
            UpstreamServer::Plain(addr)
            | UpstreamServer::Tls { addr, .. }
            | UpstreamServer::Https { addr, .. } => *addr,
        }
    }
}

/// `ip:port`, `[v6]:port`, or a bare address with `default_port`.
fn socket(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| {
            format!("`{text}` is not an IP address (with an optional port); the address is given, not looked up")
        })
}

/// `addr[@name]`: the address, and the TLS name (the address itself when absent).
fn address_and_name(text: &str, default_port: u16) -> Result<(SocketAddr, String), String> {
    let (addr, name) = match text.split_once('@') {
        Some((addr, name)) => (socket(addr, default_port)?, name.to_ascii_lowercase()),
        None => {
            let addr = socket(text, default_port)?;
            (addr, addr.ip().to_string())
        }
    };
    if name.is_empty() || name.contains(['/', ':', '@', ' ']) {
        return Err(format!("`{name}` is not a TLS server name"));
    }
    Ok((addr, name))
}

impl TryFrom<String> for UpstreamServer {
    type Error = String;

    fn try_from(text: String) -> Result<UpstreamServer, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("tls://") {
            let (addr, name) = address_and_name(rest, 853)?;
            return Ok(UpstreamServer::Tls { addr, name });
        }
        if let Some(rest) = text.strip_prefix("https://") {
            let (authority, path) = match rest.find('/') {
                Some(at) => rest.split_at(at),
                None => (rest, "/dns-query"),
            };
            let (addr, name) = address_and_name(authority, 443)?;
            return Ok(UpstreamServer::Https {
                addr,
                name,
                path: path.to_string(),
            });
        }
        if text.contains("://") {
            return Err(format!(
                "`{text}`: an upstream is `ip:port`, `tls://ip@name` or `https://ip@name/path`"
            ));
        }
        socket(text, 53).map(UpstreamServer::Plain)
    }
}

impl fmt::Display for UpstreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamServer::Plain(addr) => write!(f, "{addr}"),
            UpstreamServer::Tls { addr, name } => write!(f, "tls://{addr}@{name}"),
            UpstreamServer::Https { addr, name, path } => write!(f, "https://{addr}@{name}{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UpstreamServer, String> {
        UpstreamServer::try_from(text.to_string())
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(
            parse("9.9.9.9").unwrap(),
            UpstreamServer::Plain("9.9.9.9:53".parse().unwrap())
        );
        assert_eq!(
            parse("[2620:fe::fe]:5353").unwrap().addr(),
            "[2620:fe::fe]:5353".parse().unwrap()
        );
        assert_eq!(
            parse("tls://1.1.1.1@one.one.one.one").unwrap(),
            UpstreamServer::Tls {
                addr: "1.1.1.1:853".parse().unwrap(),
                name: "one.one.one.one".into()
            }
        );
        assert_eq!(
            parse("https://1.1.1.1@cloudflare-dns.com").unwrap(),
            UpstreamServer::Https {
                addr: "1.1.1.1:443".parse().unwrap(),
                name: "cloudflare-dns.com".into(),
                path: "/dns-query".into()
            }
        );
        assert_eq!(
            parse("https://127.0.0.1:8443@dns.test/dns-query/abc")
                .unwrap()
                .to_string(),
            "https://127.0.0.1:8443@dns.test/dns-query/abc"
        );
        assert_eq!(
            parse("tls://9.9.9.9").unwrap(),
            UpstreamServer::Tls {
                addr: "9.9.9.9:853".parse().unwrap(),
                name: "9.9.9.9".into()
            }
        );
    }

    #[test]
    fn bad_forms_say_why() {
        assert!(
            parse("dns.google")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(parse("quic://1.1.1.1").unwrap_err().contains("tls://"));
        assert!(
            parse("tls://1.1.1.1@")
                .unwrap_err()
                .contains("TLS server name")
        );
    }
}
