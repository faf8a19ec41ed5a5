//! TLS for the encrypted listeners: the certificate (reloaded when its files change), the
//! rustls server configurations, and the device token carried in the server name.
//!
//! The certificate sits behind an `ArcSwap` read by a rustls certificate resolver at each
//! handshake, so a renewed certificate is used by the next connection while open ones carry
//! on. A certificate or key that fails to load never replaces the working one: the error is
//! logged and counted, as for a broken list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::policy::compile::FileStamp;

/// ALPN protocol of DNS over TLS (RFC 7858 §3.2, IANA "dot").
pub const ALPN_DOT: &[u8] = b"dot";

/// Size, modification time and inode of the certificate and key files when loaded (`None`
/// for a file that could not be read).
type Stamps = Vec<Option<FileStamp>>;

fn stamps(paths: &[&Path]) -> Stamps {
    paths.iter().map(|p| FileStamp::of(p).ok()).collect()
}

/// Reads a PEM certificate chain and private key into a signing key for rustls.
pub fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: no PEM certificate found", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .with_context(|| format!("unsupported private key {}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .with_context(|| format!("{} does not match {}", key.display(), cert.display()))?;
    Ok(certified)
}

/// The live certificate, swapped when its files change.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    paths: Mutex<(PathBuf, PathBuf, Stamps)>,
    /// Certificate reloads that failed (the old certificate kept serving).
    pub failed_reloads: AtomicU64,
    /// Certificate reloads that succeeded.
    pub reloads: AtomicU64,
}

impl CertStore {
    /// Loads `[tls] cert` and `key`.
    pub fn load(tls: &TlsConfig) -> anyhow::Result<CertStore> {
        let (cert, key) = match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => anyhow::bail!("[tls] cert and key are required for DoT and DoH"),
        };
        let certified = load_certified_key(&cert, &key)?;
        let stamps = stamps(&[&cert, &key]);
        Ok(CertStore {
            current: ArcSwap::from_pointee(certified),
            paths: Mutex::new((cert, key, stamps)),
            failed_reloads: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
        })
    }

    /// Loads the certificate again if its paths or files changed; on failure keeps the old
    /// one and says so loudly. Runs on the reload thread.
    pub fn refresh(&self, tls: &TlsConfig) {
        let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else {
            return;
        };
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&[cert, key]);
        if &paths.0 == cert && &paths.1 == key && paths.2 == now {
            return;
        }
        match load_certified_key(cert, key) {
            Ok(certified) => {
                self.current.store(Arc::new(certified));
                *paths = (cert.clone(), key.clone(), now);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                self.failed_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = format!("{e:#}"),
                    "TLS certificate reload refused; the previous certificate keeps serving"
                );
            }
        }
    }
}

/// Hands rustls the live certificate at each handshake.
#[derive(Debug)]
struct LiveCert(Arc<CertStore>);

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

/// A rustls server configuration presenting the live certificate and offering `alpn`.
pub fn server_config(certs: &Arc<CertStore>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(LiveCert(Arc::clone(certs))));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Stateless resumption: reconnecting phones skip the full handshake, and the server keeps
    // no per-session memory.
    if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
        config.ticketer = ticketer;
    }
    Arc::new(config)
}

/// The device token in a DoT server name: the first label of `<token>.<hostname>`,
/// lowercased. The bare hostname, another name, or no name carry no token.
pub fn token_from_server_name(server_name: Option<&str>, hostname: &str) -> Option<String> {
    let name = server_name?.trim_end_matches('.');
    let (first, rest) = name.split_once('.')?;
    if !rest.eq_ignore_ascii_case(hostname) || first.is_empty() {
        return None;
    }
    Some(first.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_the_first_label_under_the_hostname() {
        let host = "dns.example.edu.vn";
        assert_eq!(
            token_from_server_name(Some("Abc123.DNS.example.edu.vn"), host).as_deref(),
            Some("abc123")
        );
        assert_eq!(
            token_from_server_name(Some("dns.example.edu.vn"), host),
            None
        );
        assert_eq!(
            token_from_server_name(Some("a.b.dns.example.edu.vn"), host),
            None
        );
        assert_eq!(token_from_server_name(Some("abc.other.vn"), host), None);
        assert_eq!(token_from_server_name(None, host), None);
    }
}
