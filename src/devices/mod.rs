//! Home devices and families: the devices file, its tokens, the commands that edit it and the
//! setup pages that tell parents how to use it.
//!
//! A device is identified by a random token it sends with every encrypted query: the first
//! label of the DoT server name (`<token>.<hostname>`) or the last segment of the DoH path
//! (`/dns-query/<token>`). The token selects the device's profile; it grants no read access to
//! anything, since it travels in clear in the TLS server name.

pub mod check;
pub mod edit;
pub mod file;
pub mod setup;
pub mod token;
