//! DNS over TLS and DNS over HTTPS upstreams, through hickory-proto's client stack: one kept
//! connection per upstream (a `DnsMultiplexer` over TLS for DoT, an HTTP/2 connection for DoH,
//! both behind a `DnsExchange`), opened on first use and opened again when it fails. Many
//! questions share the connection at once; hickory matches answers to questions by id (DoT)
//! or by stream (DoH). A kept connection the upstream has closed while idle fails the next
//! question at once; that question is asked again on a new connection, so an idle timeout on
//! the far side never costs a client an answer.
//!
//! Certificates are checked against the Mozilla roots built in (`webpki-roots`) and any
//! authority in `[upstream] ca_file`.

use std::sync::Arc;

use futures_util::StreamExt;
use hickory_proto::op::Message;
use hickory_proto::runtime::{TokioRuntimeProvider, TokioTime};
use hickory_proto::xfer::{DnsExchange, DnsHandle, DnsMultiplexer, DnsRequest, DnsRequestOptions};
use tokio::sync::Mutex;

use crate::config::upstream::UpstreamServer;

/// The trust store and TLS settings every encrypted upstream uses: the built-in roots plus the
/// PEM certificates of `ca_file`.
pub fn client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One encrypted upstream's kept connection.
pub struct Connection {
    /// A `tls://` or `https://` upstream.
    server: UpstreamServer,
    tls: Arc<rustls::ClientConfig>,
    /// The open connection, if any. A tokio mutex: held across the connect, so that a burst
    /// of questions opens one connection, not one each.
    current: Mutex<Option<DnsExchange>>,
}

impl Connection {
    /// The connection of an encrypted upstream; `None` for plain DNS.
    pub fn new(server: &UpstreamServer, tls: &Arc<rustls::ClientConfig>) -> Option<Connection> {
        if let UpstreamServer::Plain(_) = server {
            return None;
        }
        Some(Connection {
            server: server.clone(),
            tls: Arc::clone(tls),
            current: Mutex::new(None),
        })
    }

    /// The kept connection, or a new one; `true` when it is new.
    async fn exchange(&self) -> std::io::Result<(DnsExchange, bool)> {
        let mut current = self.current.lock().await;
        if let Some(exchange) = current.as_ref() {
            return Ok((exchange.clone(), false));
        }
        let provider = TokioRuntimeProvider::new();
        let (exchange, background) = match &self.server {
            UpstreamServer::Plain(addr) => {
                return Err(std::io::Error::other(format!(
                    "{addr} is a plain DNS upstream"
                )));
            }
            UpstreamServer::Tls { addr, name } => {
                let (stream, sender) = hickory_proto::rustls::tls_client_connect(
                    *addr,
                    name.clone(),
                    Arc::clone(&self.tls),
                    provider,
                );
                let multiplexer = DnsMultiplexer::new(stream, sender, None);
                let (exchange, background) = DnsExchange::connect::<_, _, TokioTime>(multiplexer)
                    .await
                    .map_err(std::io::Error::other)?;
                (exchange, tokio::spawn(background))
            }
            UpstreamServer::Https { addr, name, path } => {
                let connect = hickory_proto::h2::HttpsClientStreamBuilder::with_client_config(
                    Arc::clone(&self.tls),
                    provider,
                )
                .build(*addr, name.clone(), path.clone());
                let (exchange, background) = DnsExchange::connect::<_, _, TokioTime>(connect)
                    .await
                    .map_err(std::io::Error::other)?;
                (exchange, tokio::spawn(background))
            }
        };
        // The background task ends when the connection does; nothing waits for it.
        drop(background);
        *current = Some(exchange.clone());
        Ok((exchange, true))
    }

    /// Forgets the kept connection (it failed); the next question opens a new one.
    async fn reset(&self) {
        *self.current.lock().await = None;
    }

    /// Asks `query` and waits for its answer until `deadline`.
    pub async fn ask(
        &self,
        query: &Message,
        deadline: tokio::time::Instant,
    ) -> std::io::Result<Message> {
        loop {
            let (exchange, fresh) = tokio::time::timeout_at(deadline, self.exchange())
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            let mut options = DnsRequestOptions::default();
            options.use_edns = query.extensions().is_some();
            let mut answers = exchange.send(DnsRequest::new(query.clone(), options));
            match tokio::time::timeout_at(deadline, answers.next()).await {
                Ok(Some(Ok(response))) => return Ok(response.into_message()),
                Err(_) => {
                    self.reset().await;
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                Ok(failed) => {
                    self.reset().await;
                    if fresh {
                        let why = match failed {
                            Some(Err(e)) => e.to_string(),
                            _ => "the connection closed".into(),
                        };
                        return Err(std::io::Error::other(why));
                    }
                    // A kept connection the upstream closed: once more on a new one.
                }
            }
        }
    }
}
