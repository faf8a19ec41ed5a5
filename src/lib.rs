//! schooldns: a safe-browsing filtering DNS resolver for school networks and student devices.
//!
//! The crate is a library with a thin binary (`src/main.rs`). Modules, by what they own:
//!
//! - [`config`]: the TOML file admins write; raw serde structs and located errors.
//! - [`lists`]: blocklist parsers, one per format, pure and line-based; file reading.
//! - [`name`]: the one domain-name normalisation everything agrees on.
//! - [`policy`]: config + lists compiled into one immutable [`policy::Policy`] that decides, for
//!   a client address and a name, allow / block / rewrite / refuse, and says why.
//! - [`resolve`]: the answer cache and the upstream forwarder.
//! - [`query`]: the one query pipeline every transport feeds: parse once, decide once, one
//!   cache lookup, one writer of answer bytes, one exit that counts and records hits.
//! - [`server`]: UDP, TCP, DoT and DoH front ends: sockets, connections and their limits.
//! - [`devices`]: home devices and families: the devices file, tokens, `devices add/revoke`
//!   edits and the parents' setup pages.
//! - [`subscriptions`]: downloading category `urls` into a cache folder, beside the query path.
//! - [`reload`]: watching files and swapping in new policies beside the query path.
//! - [`hitlog`]: the policy-hit log: blocks recorded beside the query path into SQLite, and
//!   the queries and exports that read them back; with several resolvers, the SQLite file is a
//!   spool shipped to one PostgreSQL store that every instance reads.
//! - [`sync`]: one config origin (git or an HTTPS bundle) pulled, checked and swapped in, and
//!   the console's changes pushed back to it.
//! - [`exceptions`]: one name allowed or blocked for one school or the district, in a file the
//!   console writes; the policy compiles those in force.
//! - [`services`]: the catalogue of named services (TikTok, Roblox, Zoom, …) and the console's
//!   per-profile and per-school toggles.
//! - [`calendar`]: exam days and holidays, from the calendar file and imported iCal calendars.
//! - [`clock`] and [`schedule_timer`]: the time rules are judged by (a test may shift it), and
//!   the thread that switches each place's precompiled rules at a schedule's or a day's edge.
//! - [`access`]: bearer tokens and the roles they grant (district, police, one school).
//! - [`console`]: the web console: people, sessions, pages in Vietnamese and English.
//! - [`admin`] and [`metrics`]: `/metrics`, `/health`, `/reload` and the hit-log read API on
//!   the admin listener.
//! - [`logging`]: the operator's log on standard error, with remote-triggered lines rate-limited.
//! - [`cli`]: the `schooldns` commands (`serve`, `check`, `explain`, `reload`, `hits`,
//!   `devices`).
//!
//! `policy` and `lists` use no tokio, sockets or hickory types: they take a normalised name and
//! an address and return a decision, so they are tested and benchmarked on their own.
//!
//! # One query's path
//! 1. A front end receives a query; [`query::request`] reads it once (responses are ignored).
//! 2. The pipeline loads the live snapshot once ([`live::Live::load`]): policy, config,
//!    upstreams.
//! 3. The source address selects school and profile (longest prefix), or, for DoT and DoH, the
//!    device token does; otherwise the query is refused.
//! 4. The qname becomes a [`name::QueryName`] once.
//! 5. [`policy::Policy::decide`] answers for the place's rules in force now (one atomic load:
//!    the schedule timer keeps them current): exceptions, then allow-list, then blocked categories, then bypass
//!    protection, then safe search, then allow. Pure, lock-free, allocation-free.
//! 6. Blocks are answered from the profile's block answer and recorded in the hit log.
//! 7. Allowed names go to the cache (one lookup: fresh, stale or miss), then upstream;
//!    rewrites resolve their target.
//! 8. [`query::answer`] writes the response, echoing id, question and flags.
//! 9. One exit counts every query and hands blocks to the hit log.
//! 10. Reloads, log writes and list downloads happen beside the path, never on it.

pub mod access;
pub mod admin;
pub mod app;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod devices;
pub mod exceptions;
pub mod files;
pub mod hitlog;
pub mod lists;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod name;
pub mod policy;
pub mod priority;
pub mod query;
pub mod reload;
pub mod resolve;
pub mod schedule_timer;
pub mod server;
pub mod services;
pub mod subscriptions;
pub mod sync;
