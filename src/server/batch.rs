//! Batched datagram I/O on Linux: `recvmmsg` reads up to [`BATCH`] queries with one system call
//! and `sendmmsg` writes their answers with one more. On this path the kernel's per-call cost is
//! most of the work a cached or blocked answer needs, so batching is what makes it cheap.
//!
//! This is the crate's one place of raw socket calls; everything unsafe is confined to
//! [`Batch::recv`] and [`send`], which build their headers from buffers they own for the
//! duration of the call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest datagram read.
pub const MAX_DATAGRAM: usize = 4096;

/// Buffers for one batch of datagrams read.
pub struct Batch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            bufs: vec![0; BATCH * MAX_DATAGRAM],
            // SAFETY: sockaddr_storage is plain data for which all-zero is a valid value.
            addrs: vec![unsafe { zeroed() }; BATCH],
            lens: [0; BATCH],
        }
    }
}

impl Batch {
    /// Reads up to [`BATCH`] datagrams without blocking; returns how many (WouldBlock if none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.bufs[i * MAX_DATAGRAM..].as_mut_ptr().cast(),
            iov_len: MAX_DATAGRAM,
        });
        // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) header.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, msg) in msgs.iter_mut().enumerate() {
            msg.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_hdr.msg_iov = &mut iovecs[i];
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points into `self.bufs`, `self.addrs` and `iovecs`, which
        // outlive the call and are sized as the headers say.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, msg) in msgs.iter().take(n).enumerate() {
            self.lens[i] = msg.msg_len as usize;
        }
        Ok(n)
    }

    /// The `i`-th datagram read and its source.
    pub fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let start = i * MAX_DATAGRAM;
        (
            &self.bufs[start..start + self.lens[i]],
            to_socket_addr(&self.addrs[i]),
        )
    }
}

/// Writes queued answers (bytes, destination) without blocking, at most [`BATCH`] per call;
/// the ones sent are removed from `out`. WouldBlock if none could be sent.
pub fn send(fd: RawFd, out: &mut Vec<(Vec<u8>, SocketAddr)>) -> io::Result<usize> {
    let count = out.len().min(BATCH);
    // SAFETY: plain data, all-zero is valid.
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut addr_lens = [0 as libc::socklen_t; BATCH];
    let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|_| libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    });
    for (i, (bytes, to)) in out.iter().take(count).enumerate() {
        addr_lens[i] = from_socket_addr(*to, &mut addrs[i]);
        iovecs[i] = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
    }
    // SAFETY: plain data, all-zero is valid.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for (i, msg) in msgs.iter_mut().take(count).enumerate() {
        msg.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
        msg.msg_hdr.msg_namelen = addr_lens[i];
        msg.msg_hdr.msg_iov = &mut iovecs[i];
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points into `addrs`, `iovecs` and the queued byte vectors, all alive
    // and unmoved for the duration of the call; the kernel only reads them.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    out.drain(..n as usize);
    Ok(n as usize)
}

fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough for and aligned for.
            let a: &libc::sockaddr_in =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn from_socket_addr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let a: &mut libc::sockaddr_in =
                unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = v4.port().to_be();
            a.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &mut libc::sockaddr_in6 =
                unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
            a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            a.sin6_port = v6.port().to_be();
            a.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            a.sin6_flowinfo = v6.flowinfo();
            a.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}
