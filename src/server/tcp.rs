//! The TCP front end: length-prefixed messages (RFC 1035 §4.2.2, RFC 7766), one connection's
//! queries answered in order, idle connections closed. Transport only.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::handler::{Handler, Protocol};

/// A connection that sends nothing for this long is closed (RFC 7766 §6.2.3 suggests seconds).
const IDLE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown`; `connections` bounds how many are open at once.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    connections: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        let (stream, src) = tokio::select! {
            _ = stop.wait_for(|&s| s) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept error");
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let handler = Arc::clone(&handler);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = connection(stream, src, &handler, shutdown).await;
            drop(permit);
        });
    }
}

/// Answers one connection's queries one after another, so one client cannot take more than
/// one task's worth of resources.
async fn connection(
    mut stream: TcpStream,
    src: std::net::SocketAddr,
    handler: &Handler,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let len = tokio::select! {
            _ = shutdown.wait_for(|&s| s) => return Ok(()),
            len = tokio::time::timeout(IDLE, stream.read_u16()) => match len {
                Ok(Ok(len)) => len as usize,
                _ => return Ok(()),
            },
        };
        buf.resize(len, 0);
        tokio::time::timeout(IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(response) = handler.handle(&buf, src, Protocol::Tcp).await else {
            continue;
        };
        let Ok(len) = u16::try_from(response.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        stream.write_all(&framed).await?;
    }
}
