//! Who may read the hit log: bearer tokens from `[[admin.tokens]]`, each with a role.
//!
//! The config holds only SHA-256 hashes. A presented token is hashed and compared against
//! every configured hash in constant time (no early exit on the first differing byte, none
//! on the first match), so response timing tells nothing about how close a guess was.

use subtle::ConstantTimeEq;

use crate::config::AdminConfig;

/// What an API token or a console user may read and change: the one role type of both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything: every school's records, and every change.
    District,
    /// Reads every school's records and exports them; changes nothing.
    Police,
    /// Only this school's records, exceptions, devices and unblock requests.
    School(String),
}

impl Role {
    /// Parses `district`, `police` or `school:<id>` (the config check vets the id).
    pub fn parse(text: &str) -> Option<Role> {
        match text.strip_prefix("school:") {
            Some(id) if !id.is_empty() => Some(Role::School(id.to_string())),
            Some(_) => None,
            None => match text {
                "district" => Some(Role::District),
                "police" => Some(Role::Police),
                _ => None,
            },
        }
    }

    /// The school a reader is confined to, if any.
    pub fn school(&self) -> Option<&str> {
        match self {
            Role::District | Role::Police => None,
            Role::School(id) => Some(id),
        }
    }

    /// Whether this role may change anything (exceptions, devices, requests' outcomes).
    pub fn may_change(&self) -> bool {
        !matches!(self, Role::Police)
    }

    /// Whether this role may act for `school` (district: every school).
    pub fn covers(&self, school: &str) -> bool {
        self.school().is_none_or(|own| own == school)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::District => f.write_str("district"),
            Role::Police => f.write_str("police"),
            Role::School(id) => write!(f, "school:{id}"),
        }
    }
}

/// The configured tokens.
#[derive(Debug, Default)]
pub struct Access {
    tokens: Vec<([u8; 32], Role)>,
}

impl Access {
    /// Builds from a checked config (hashes are 64 hex digits, roles valid).
    pub fn from_config(admin: &AdminConfig) -> Access {
        let tokens = admin
            .tokens
            .iter()
            .filter_map(|t| {
                let hash = decode_hex(t.sha256.get_ref().trim())?;
                Some((hash, Role::parse(t.role.get_ref())?))
            })
            .collect();
        Access { tokens }
    }

    /// The role of the token in an `Authorization` header value (`Bearer <token>`), or
    /// `None` when it is missing, malformed or unknown.
    pub fn authorize(&self, authorization: Option<&str>) -> Option<&Role> {
        let header = authorization?.trim();
        let (scheme, token) = header.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let digest = sha256(token.trim().as_bytes());
        let mut found = None;
        for (i, (hash, _)) in self.tokens.iter().enumerate() {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found.map(|i| &self.tokens[i].1)
    }

    /// Whether any token is configured (otherwise the read API is closed to everyone).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Lower-case hex of the SHA-256 of a token: what goes into `[[admin.tokens]] sha256`.
pub fn sha256_hex(token: &str) -> String {
    sha256(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadedConfig, TokenConfig};

    fn access() -> Access {
        let text = format!(
            "[[schools]]\nid = \"th-kim-dong\"\nname = \"TH Kim Đồng\"\nnetworks = [\"10.0.0.0/8\"]\n\
             profile = \"p\"\n[[admin.tokens]]\nsha256 = \"{}\"\nrole = \"district\"\n\
             [[admin.tokens]]\nsha256 = \"{}\"\nrole = \"school:th-kim-dong\"\n",
            sha256_hex("police-token"),
            sha256_hex("school-token").to_uppercase()
        );
        let loaded = LoadedConfig::parse(std::path::Path::new("c.toml"), text).unwrap();
        let _: &Vec<TokenConfig> = &loaded.config.admin.tokens;
        Access::from_config(&loaded.config.admin)
    }

    #[test]
    fn tokens_map_to_their_roles() {
        let access = access();
        assert_eq!(
            access.authorize(Some("Bearer police-token")),
            Some(&Role::District)
        );
        assert_eq!(
            access.authorize(Some("bearer school-token")),
            Some(&Role::School("th-kim-dong".into()))
        );
        assert_eq!(access.authorize(Some("Bearer school-token2")), None);
        assert_eq!(access.authorize(Some("Basic school-token")), None);
        assert_eq!(access.authorize(Some("school-token")), None);
        assert_eq!(access.authorize(None), None);
    }

    #[test]
    fn known_hash() {
        // `printf %s test | sha256sum`
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
