//! A test certificate authority made at test time, and DoT/DoH clients that trust it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The public hostname every encrypted test uses.
pub const HOSTNAME: &str = "dns.test";

/// A CA and a server certificate for `dns.test` and `*.dns.test`, as PEM.
pub struct TestPki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "schooldns test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let (cert_pem, key_pem) = server_cert(&ca);
        TestPki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            ca,
            cert_pem,
            key_pem,
        }
    }

    /// Another server certificate from the same CA, with a new key: (cert PEM, key PEM).
    pub fn renewed(&self) -> (String, String) {
        server_cert(&self.ca)
    }

    /// Writes `tls/cert.pem`, `tls/key.pem` and `tls/ca.pem` under `dir`.
    pub fn write(&self, dir: &Path) {
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("cert.pem"), &self.cert_pem).unwrap();
        std::fs::write(tls.join("key.pem"), &self.key_pem).unwrap();
        std::fs::write(tls.join("ca.pem"), &self.ca_pem).unwrap();
    }

    /// A client configuration trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A fresh server certificate (new key) signed by `ca`, as (cert PEM, key PEM).
pub fn server_cert(ca: &CertifiedIssuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec![HOSTNAME.to_string(), format!("*.{HOSTNAME}")]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Opens a TLS connection to `addr` presenting `server_name` (SNI).
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// One DoT query on a fresh connection with `server_name` as SNI.
pub async fn dot_query(
    pki: &TestPki,
    addr: SocketAddr,
    server_name: &str,
    message: &Message,
) -> Message {
    let mut tls = connect(pki.client_config(&[b"dot"]), addr, server_name)
        .await
        .unwrap();
    dot_exchange(&mut tls, message).await
}

/// One query and its answer on an open DoT connection.
pub async fn dot_exchange<S>(tls: &mut S, message: &Message) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let bytes = message.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    tls.write_all(&framed).await.unwrap();
    let len = tls.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    tls.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// One HTTP/1.1 request over TLS to `addr` (SNI `dns.test`); returns (status, headers, body).
pub async fn https(
    pki: &TestPki,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut tls = connect(pki.client_config(&[b"http/1.1"]), addr, HOSTNAME)
        .await
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut response = Vec::new();
    // The server closes after the response (Connection: close); a TLS close_notify may be
    // missing, which is fine once the body is in.
    let _ = tls.read_to_end(&mut response).await;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// A DoH query by POST on `/dns-query/<token>` (or `/dns-query` when `token` is `None`).
pub async fn doh_post(
    pki: &TestPki,
    addr: SocketAddr,
    token: Option<&str>,
    message: &Message,
) -> Message {
    let path = token.map_or("/dns-query".to_string(), |t| format!("/dns-query/{t}"));
    let (status, head, body) = https(
        pki,
        addr,
        "POST",
        &path,
        &[("Content-Type", "application/dns-message")],
        &message.to_vec().unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    Message::from_vec(&body).unwrap()
}

/// A DoH query by GET with `?dns=` on `/dns-query/<token>`; returns the message and head.
pub async fn doh_get(
    pki: &TestPki,
    addr: SocketAddr,
    token: &str,
    message: &Message,
) -> (Message, String) {
    use base64::Engine;
    let dns = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message.to_vec().unwrap());
    let (status, head, body) = https(
        pki,
        addr,
        "GET",
        &format!("/dns-query/{token}?dns={dns}"),
        &[("Accept", "application/dns-message")],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{head}");
    (Message::from_vec(&body).unwrap(), head)
}
