//! Signed-in sessions: a random 128-bit id in an `HttpOnly`, `SameSite=Strict` cookie (also
//! `Secure` over TLS), ended by sign-out or after [`IDLE`] without a request; each carries its
//! CSRF token, which every state-changing form sends back.
//!
//! The table lives in memory (a restart signs everyone out, which is the safe side) behind a
//! mutex only the admin listener takes; the query path never sees it. A session remembers the
//! password hash it was opened under, so a password reset or a disabled user ends it at the
//! next request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::access::Role;
use crate::console::users::User;

/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held; beyond it the one idle longest is dropped.
pub const MAX_SESSIONS: usize = 10_000;
/// The session cookie's name.
pub const COOKIE: &str = "schooldns_session";

/// One signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id (32 hex digits), as in the cookie.
    pub id: String,
    /// The user's sign-in name.
    pub user: String,
    /// Shown in the page header.
    pub display_name: String,
    /// What they may see and do.
    pub role: Role,
    /// The token every state-changing form carries.
    pub csrf: String,
    /// The password must be changed before anything else.
    pub must_change: bool,
    /// The password hashes the session holds under: the one it was opened with, or after the
    /// person changed it here, the new one and (until the reload has the new) the old one.
    passwords: Vec<String>,
    last_seen: Instant,
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        token.len() == self.csrf.len() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The sessions table.
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<HashMap<String, Session>>,
}

/// 128 random bits as 32 hex digits.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness, no session: an id nobody can present.
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Opens a session for `user` (whose password was just verified); returns it.
    pub fn open(&self, user: &User, role: Role) -> Option<Session> {
        let id = random_id();
        let csrf = random_id();
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let session = Session {
            id: id.clone(),
            user: user.name.clone(),
            display_name: user
                .display_name
                .clone()
                .unwrap_or_else(|| user.name.clone()),
            role,
            csrf,
            must_change: user.must_change,
            passwords: vec![user.password.clone()],
            last_seen: Instant::now(),
        };
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        table.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .values()
                .min_by_key(|s| s.last_seen)
                .map(|s| s.id.clone())
        {
            table.remove(&oldest);
        }
        table.insert(id, session.clone());
        Some(session)
    }

    /// The live session with this id, touched; `None` when unknown, idle too long, or when its
    /// user is gone, disabled, has another role or another password than it was opened under.
    pub fn find(&self, id: &str, users: &[User]) -> Option<Session> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let session = table.get_mut(id)?;
        let now = Instant::now();
        let user = users.iter().find(|u| u.name == session.user);
        let valid = now.duration_since(session.last_seen) < IDLE
            && user.is_some_and(|u| {
                !u.disabled
                    && u.role().as_ref() == Some(&session.role)
                    && session.passwords.contains(&u.password)
            });
        if !valid {
            table.remove(id);
            return None;
        }
        // The reload has the new hash: the old one no longer opens anything.
        if let Some(user) = user
            && session.passwords.first() == Some(&user.password)
        {
            session.passwords.truncate(1);
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// After the user changed their own password: the session carries on under the new hash.
    pub fn password_changed(&self, id: &str, new_hash: &str) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = table.get_mut(id) {
            session.passwords.insert(0, new_hash.to_string());
            session.passwords.truncate(2);
            session.must_change = false;
        }
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// The `Set-Cookie` value that opens a session.
pub fn cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        IDLE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn cleared_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A cookie's value from a `Cookie` header.
pub fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n == name).then_some(v)
    })
}

/// Failed sign-ins allowed per user name, and per source address, within [`WINDOW`].
pub const MAX_FAILURES_PER_USER: usize = 5;
/// Per source address (a school's NAT address serves many people: a little more room).
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed sign-ins, by user name and by source address: beyond the limit, sign-in is refused
/// (without checking the password) until the oldest failure leaves the window.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl SignInLimiter {
    /// How long until `user` from `address` may try again; `None`: now.
    pub fn wait(&self, user: &str, address: &str) -> Option<Duration> {
        let mut table = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wait = None;
        for (key, limit) in [
            (format!("user:{user}"), MAX_FAILURES_PER_USER),
            (format!("address:{address}"), MAX_FAILURES_PER_ADDRESS),
        ] {
            if let Some(times) = table.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= limit {
                    let until = WINDOW.saturating_sub(now.duration_since(times[0]));
                    wait = Some(wait.map_or(until, |w: Duration| w.max(until)));
                }
            }
        }
        wait
    }

    /// Records a failed sign-in.
    pub fn failed(&self, user: &str, address: &str) {
        let mut table = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Bounded: an address spraying names leaves at most this many keys.
        if table.len() > 100_000 {
            table.retain(|_, times| {
                times
                    .last()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        for key in [format!("user:{user}"), format!("address:{address}")] {
            table.entry(key).or_default().push(now);
        }
    }

    /// A successful sign-in clears the user's failures.
    pub fn succeeded(&self, user: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: &str, hash: &str) -> User {
        toml::from_str(&format!(
            "name = \"{name}\"\nrole = \"{role}\"\npassword = \"{hash}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_session_ends_when_its_user_changes() {
        let sessions = Sessions::default();
        let lan = user("lan", "school:lab", "$argon2id$a");
        let session = sessions.open(&lan, Role::School("lab".into())).unwrap();
        assert_eq!(session.id.len(), 32);
        assert!(session.csrf_matches(&session.csrf) && !session.csrf_matches("x"));
        assert!(
            sessions
                .find(&session.id, std::slice::from_ref(&lan))
                .is_some()
        );
        // Another password (reset by an admin): over.
        let reset = user("lan", "school:lab", "$argon2id$b");
        assert!(sessions.find(&session.id, &[reset]).is_none());
        assert!(
            sessions
                .find(&session.id, std::slice::from_ref(&lan))
                .is_none(),
            "closed for good"
        );
        // Another role, or disabled: over.
        let s = sessions.open(&lan, Role::School("lab".into())).unwrap();
        assert!(
            sessions
                .find(&s.id, &[user("lan", "district", "$argon2id$a")])
                .is_none()
        );
        let s = sessions.open(&lan, Role::School("lab".into())).unwrap();
        let mut disabled = lan.clone();
        disabled.disabled = true;
        assert!(sessions.find(&s.id, &[disabled]).is_none());
        let s = sessions.open(&lan, Role::School("lab".into())).unwrap();
        sessions.close(&s.id);
        assert!(sessions.find(&s.id, &[lan]).is_none());
    }

    #[test]
    fn failed_sign_ins_are_limited_per_user_and_per_address() {
        let limiter = SignInLimiter::default();
        for _ in 0..MAX_FAILURES_PER_USER {
            assert!(limiter.wait("lan", "10.0.0.1").is_none());
            limiter.failed("lan", "10.0.0.1");
        }
        assert!(limiter.wait("lan", "10.0.0.9").is_some(), "per user name");
        assert!(limiter.wait("minh", "10.0.0.1").is_none());
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            limiter.failed(&format!("u{i}"), "10.0.0.2");
        }
        assert!(
            limiter.wait("someone-else", "10.0.0.2").is_some(),
            "per address"
        );
        assert_eq!(
            cookie_value(Some("a=1; schooldns_session=abc"), COOKIE),
            Some("abc")
        );
    }
}
