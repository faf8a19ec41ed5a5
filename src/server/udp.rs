//! The UDP front end: datagrams in, pipeline, datagrams out. Transport only.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};

use crate::query::{Handled, Pending, Pipeline, Protocol};

/// Largest query accepted over UDP (EDNS payloads above this are not needed for questions).
#[cfg(not(target_os = "linux"))]
const MAX_QUERY: usize = 4096;

/// Serves one UDP socket until `shutdown` turns true, reading and answering in batches
/// (`recvmmsg`/`sendmmsg`). Blocks, refusals and cache hits are answered within the batch; only
/// questions that need an upstream become tasks, bounded by `in_flight`.
#[cfg(target_os = "linux")]
pub async fn serve(
    socket: Arc<UdpSocket>,
    pipeline: Arc<Pipeline>,
    in_flight: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    use super::batch::{self, Batch};

    let fd = socket.as_raw_fd();
    let mut batch = Batch::default();
    let mut answers = Vec::with_capacity(batch::BATCH);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|&stop| stop) => return,
            ready = socket.readable() => if ready.is_err() { continue },
        }
        let received = match socket.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        for i in 0..received {
            let (query, src) = batch.datagram(i);
            let Some(src) = src else { continue };
            match pipeline.handle_now(query, src, Protocol::Udp) {
                Handled::Done(Some(response)) => answers.push((response, src)),
                Handled::Done(None) => {}
                Handled::Pending(pending) => {
                    let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                        // Too many upstream questions in flight: shed this one rather than
                        // stall every cached and blocked answer behind it.
                        continue;
                    };
                    spawn_upstream(&socket, &pipeline, pending, src, permit);
                }
            }
        }
        while !answers.is_empty() {
            match socket.try_io(Interest::WRITABLE, || batch::send(fd, &mut answers)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = socket.writable().await;
                }
                Err(e) => {
                    // One destination failed (e.g. unreachable): drop it, send the rest.
                    tracing::debug!(error = %e, "udp send error");
                    answers.remove(0);
                }
            }
        }
    }
}

/// Serves one UDP socket until `shutdown` turns true, one datagram per system call (systems
/// without `recvmmsg`). Questions that need an upstream run as their own tasks so a slow
/// upstream never delays the next client; `in_flight` bounds how many run at once and lets
/// shutdown wait for them.
#[cfg(not(target_os = "linux"))]
pub async fn serve(
    socket: Arc<UdpSocket>,
    pipeline: Arc<Pipeline>,
    in_flight: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        let (len, src) = tokio::select! {
            _ = shutdown.wait_for(|&stop| stop) => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            },
        };
        // Blocks, refusals and cache hits are answered right here; only questions that need
        // an upstream become tasks.
        let pending = match pipeline.handle_now(&buf[..len], src, Protocol::Udp) {
            Handled::Done(Some(response)) => {
                let _ = socket.send_to(&response, src).await;
                continue;
            }
            Handled::Done(None) => continue,
            Handled::Pending(pending) => pending,
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        spawn_upstream(&socket, &pipeline, pending, src, permit);
    }
}

/// Finishes a question that needs an upstream as its own task, holding an `in_flight` permit
/// until its answer is sent.
fn spawn_upstream(
    socket: &Arc<UdpSocket>,
    pipeline: &Arc<Pipeline>,
    pending: Box<Pending>,
    src: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let socket = Arc::clone(socket);
    let pipeline = Arc::clone(pipeline);
    tokio::spawn(async move {
        if let Some(response) = pipeline.finish(pending).await {
            let _ = socket.send_to(&response, src).await;
        }
        drop(permit);
    });
}
