//! Client address → (school, place), longest prefix wins, over IPv4 and IPv6.
//!
//! One hash map per prefix length in use, probed from the longest length down. Districts use a
//! handful of lengths (/16, /24, /48, /56), so a lookup is two or three hash probes whatever the
//! number of schools. IPv4-mapped IPv6 clients (from dual-stack sockets) are matched as IPv4.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

/// What a network maps to: indices into the policy's schools and profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkTarget {
    /// Index of the school.
    pub school: u32,
    /// Index of the place (profile and rules) in the policy's time rules.
    pub slot: u32,
}

/// The compiled network table.
#[derive(Debug, Default)]
pub struct Networks {
    /// (prefix length, masked address → target), longest length first.
    v4: Vec<(u8, FxHashMap<u32, NetworkTarget>)>,
    v6: Vec<(u8, FxHashMap<u128, NetworkTarget>)>,
}

fn mask_v4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (!0u32 << (32 - u32::from(len)))
    }
}

fn mask_v6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (!0u128 << (128 - u32::from(len)))
    }
}

impl Networks {
    /// Adds a network. Returns the target already registered for exactly this network, if
    /// any, and leaves it in place.
    pub fn insert(&mut self, net: IpNet, target: NetworkTarget) -> Result<(), NetworkTarget> {
        let len = net.prefix_len();
        match net.trunc() {
            IpNet::V4(n) => {
                let key = mask_v4(u32::from(n.network()), len);
                insert_len(&mut self.v4, len, key, target)
            }
            IpNet::V6(n) => {
                let key = mask_v6(u128::from(n.network()), len);
                insert_len(&mut self.v6, len, key, target)
            }
        }
    }

    /// The most specific network containing `ip`.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<NetworkTarget> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                self.v4
                    .iter()
                    .find_map(|(len, map)| map.get(&mask_v4(addr, *len)).copied())
            }
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                self.v6
                    .iter()
                    .find_map(|(len, map)| map.get(&mask_v6(addr, *len)).copied())
            }
        }
    }

    /// Number of networks.
    pub fn len(&self) -> usize {
        self.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    /// True when no network is configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn insert_len<K: std::hash::Hash + Eq>(
    by_len: &mut Vec<(u8, FxHashMap<K, NetworkTarget>)>,
    len: u8,
    key: K,
    target: NetworkTarget,
) -> Result<(), NetworkTarget> {
    let pos = match by_len.iter().position(|(l, _)| *l == len) {
        Some(p) => p,
        None => {
            by_len.push((len, FxHashMap::default()));
            by_len.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
            by_len.iter().position(|(l, _)| *l == len).unwrap_or(0)
        }
    };
    match by_len[pos].1.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Err(*e.get()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(target);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(school: u32, slot: u32) -> NetworkTarget {
        NetworkTarget { school, slot }
    }

    #[test]
    fn longest_prefix_wins_over_both_families() {
        let mut n = Networks::default();
        n.insert("10.0.0.0/8".parse().unwrap(), t(0, 0)).unwrap();
        n.insert("10.1.0.0/16".parse().unwrap(), t(1, 1)).unwrap();
        n.insert("10.1.9.0/24".parse().unwrap(), t(1, 3)).unwrap();
        n.insert("2001:db8:1::/48".parse().unwrap(), t(1, 1))
            .unwrap();
        n.insert("2001:db8:1:9::/64".parse().unwrap(), t(1, 3))
            .unwrap();
        let cases = [
            ("10.200.0.1", Some(t(0, 0))),
            ("10.1.2.3", Some(t(1, 1))),
            ("10.1.9.250", Some(t(1, 3))),
            ("::ffff:10.1.9.1", Some(t(1, 3))),
            ("2001:db8:1:2::5", Some(t(1, 1))),
            ("2001:db8:1:9::5", Some(t(1, 3))),
            ("11.0.0.1", None),
            ("2001:db8:2::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(n.lookup(ip.parse().unwrap()), want, "{ip}");
        }
        assert_eq!(n.len(), 5);
    }

    #[test]
    fn the_same_network_twice_is_reported() {
        let mut n = Networks::default();
        n.insert("10.1.0.0/16".parse().unwrap(), t(0, 0)).unwrap();
        // Host bits are ignored: 10.1.2.3/16 is the same network.
        assert_eq!(
            n.insert("10.1.2.3/16".parse().unwrap(), t(1, 0)),
            Err(t(0, 0))
        );
        n.insert("0.0.0.0/0".parse().unwrap(), t(2, 0)).unwrap();
        assert_eq!(n.lookup("192.0.2.1".parse().unwrap()), Some(t(2, 0)));
    }
}
