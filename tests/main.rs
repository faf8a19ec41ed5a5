//! Integration tests: one binary, one module per area.
//!
//! - `parsers`: every list format on real excerpts in `tests/fixtures/`.
//! - `policy`: decision semantics on real list files written to temporary folders.
//! - `alloc`: a counting allocator proving the decision path never allocates.
//! - `cli`: the real `schooldns` binary, good and bad configs.
//! - `clients`: kdig, curl and headless Chromium against the encrypted listeners.
//! - `server`: the real server on loopback with a fake upstream: answers, blocks, cache, reloads.
//! - `devices`: home devices over DoT and DoH with a test CA: tokens, setup pages, edits.
//! - `http2`: DoH's own HTTP/2 connection driven by an independent client (the `h2` crate).
//! - `promises`: README promises pinned on the wire (transports, cache, EDNS cut, stale).
//! - `robustness`: what outside testing found could knock the resolver over, reproduced.
//! - `upstream`: forwarding: retransmission, hedging, skipping, health.
//! - `console`: the web console in headless Chromium (WebDriver), with dig and kdig.
//! - `schedules`: services and rules in time on the real binary with its clock set: lessons,
//!   holidays, exam days (calendar file and iCal import), a device's bedtime, the edge under load.
//! - `shipped`: the shipped config and every shipped blocklist.
//! - `district`: several resolvers, one PostgreSQL hit store (a throwaway cluster), one config
//!   origin.

mod alloc;
mod cli;
mod clients;
mod common;
mod console;
mod devices;
mod district;
mod hitlog;
mod http2;
mod parsers;
mod policy;
mod promises;
mod robustness;
mod schedules;
mod server;
mod shipped;
mod upstream;
