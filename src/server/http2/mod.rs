//! A lean HTTP/2 server connection (RFC 9113) for DNS over HTTPS.
//!
//! Why not hyper's: DoH requests are tiny and mostly answered at once from the cache, and a
//! district holds thousands of phones' connections open. hyper and h2 give each connection
//! 28 KiB of buffers fixed at open (h2's write buffer alone is 16 KiB) and each request a task,
//! channels and header maps. Here an idle connection keeps only its small read reservation and
//! the client's HPACK table, and a request answered from the cache is decoded, answered and
//! written within one poll of the connection's task.
//!
//! What it covers: the preface and SETTINGS exchange, HEADERS with CONTINUATION and padding,
//! request bodies in DATA frames, flow control both ways (responses wait for the client's
//! window; the client's window is topped up as bodies are read), PING, RST_STREAM, GOAWAY both
//! ways, a concurrent-stream limit, and graceful close on idle or shutdown. No server push, no
//! priorities (advisory; ignored), no CONNECT.

pub mod connection;
pub mod frame;
pub mod headers;
pub mod hpack;

pub use connection::{Limits, serve};
