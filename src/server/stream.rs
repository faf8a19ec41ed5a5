//! Length-prefixed DNS over a byte stream (RFC 1035 §4.2.2, RFC 7766), shared by TCP and DoT.
//!
//! One task per connection. Queries are read as fast as they arrive (pipelining); answers that
//! need nothing are written at once, and queries waiting on an upstream run in their own tasks
//! and are written when they finish, in whatever order (RFC 7766 §6.2.1.1, RFC 7858 §3.3), so
//! a slow upstream answer never holds up a cached one behind it. Answers ready together go out
//! in one write (one TLS record for DoT). Reading uses only cancel-safe reads (through the
//! per-thread scratch buffer of `scratch.rs`), so
//! waiting for the next query and for a finished answer happen in one `select!`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::scratch;
use super::slots::Slot;
use crate::query::{Handled, Origin, Pipeline, Protocol};

/// Most queries of one connection waiting on upstreams at once; beyond it reading pauses.
const MAX_PENDING_PER_CONNECTION: usize = 128;

/// What one connection is, for the pipeline.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: std::net::SocketAddr,
    /// `Tcp` or `Dot`.
    pub protocol: Protocol,
    /// The device token from the DoT server name (lowercase).
    pub token: Option<String>,
}

/// How long a connection may go without progress, and how long one write may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Closed after this long without a completed answer (bytes alone are not progress).
    pub idle: Duration,
    /// A write the client does not take within this long ends the connection.
    pub write: Duration,
}

/// Answers one connection until the client closes it, it completes no query for
/// `timeouts.idle`, its slot is taken for a newcomer, or the server shuts down (queries
/// already read are still answered).
pub async fn serve<S>(
    mut stream: S,
    peer: Peer,
    pipeline: Arc<Pipeline>,
    slot: &Slot,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Made on the first query that waits on an upstream and dropped when none waits: most
    // connections sit idle with every answer cached, and the channel's first block is 1 KiB.
    let mut done: Option<Done> = None;
    let mut input = BytesMut::new();
    let mut output: Vec<u8> = Vec::new();
    let mut pending = 0usize;
    let mut reading = true;
    loop {
        while let Some(message) = next_frame(&mut input) {
            let origin = Origin {
                addr: peer.addr,
                protocol: peer.protocol,
                token: peer.token.as_deref(),
            };
            match pipeline.handle_now_from(&message, origin) {
                Handled::Done(response) => push_framed(&mut output, response),
                Handled::Pending(query) => {
                    pending += 1;
                    let pipeline = Arc::clone(&pipeline);
                    let done = done.get_or_insert_with(mpsc::unbounded_channel).0.clone();
                    tokio::spawn(async move {
                        let _ = done.send(pipeline.finish(query).await);
                    });
                }
            }
        }
        if !output.is_empty() {
            let write = async {
                stream.write_all(&output).await?;
                stream.flush().await
            };
            match tokio::time::timeout(timeouts.write, write).await {
                Ok(result) => result?,
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
            }
            slot.progress();
            // An idle connection keeps no output buffer either.
            output = Vec::new();
        }
        if !reading && pending == 0 {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        scratch::release_if_empty(&mut input);
        let can_read = reading && pending < MAX_PENDING_PER_CONNECTION;
        tokio::select! {
            _ = shutdown.wait_for(|&s| s), if reading => reading = false,
            // Idle since the last answer, or evicted for a newcomer: answer what was read,
            // then close.
            _ = slot.closing(timeouts.idle), if reading => reading = false,
            read = scratch::read_into(&mut stream, &mut input), if can_read => {
                match read {
                    Ok(n) if n > 0 => {}
                    // Closed or failed: answer what was read, then close.
                    _ => reading = false,
                }
            }
            Some(response) = recv(&mut done), if pending > 0 => {
                pending -= 1;
                push_framed(&mut output, response);
                if pending == 0 {
                    done = None;
                }
            }
        }
    }
}

/// Answers finished by tasks waiting on upstreams.
type Done = (
    mpsc::UnboundedSender<Option<Vec<u8>>>,
    mpsc::UnboundedReceiver<Option<Vec<u8>>>,
);

/// The next finished answer (only polled while some are pending, so the channel exists).
async fn recv(done: &mut Option<Done>) -> Option<Option<Vec<u8>>> {
    match done {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Takes one complete length-prefixed message off the front of `input`.
fn next_frame(input: &mut BytesMut) -> Option<BytesMut> {
    if input.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
    if input.len() < 2 + len {
        return None;
    }
    input.advance(2);
    Some(input.split_to(len))
}

fn push_framed(output: &mut Vec<u8>, response: Option<Vec<u8>>) {
    let Some(response) = response else {
        return;
    };
    let Ok(len) = u16::try_from(response.len()) else {
        return;
    };
    output.extend_from_slice(&len.to_be_bytes());
    output.extend_from_slice(&response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_only_when_complete() {
        let mut input = BytesMut::from(&[0u8, 3, b'a', b'b'][..]);
        assert!(next_frame(&mut input).is_none());
        input.extend_from_slice(&[b'c', 0, 1]);
        assert_eq!(&next_frame(&mut input).unwrap()[..], b"abc");
        assert!(next_frame(&mut input).is_none());
        input.extend_from_slice(b"z");
        assert_eq!(&next_frame(&mut input).unwrap()[..], b"z");
        assert!(input.is_empty());
    }
}
