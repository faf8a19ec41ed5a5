//! The console's people: the users file (`[console] users`), its roles, its password hashes,
//! and the edits `schooldns users add | passwd | disable | list` make.
//!
//! ```toml
//! [[users]]
//! name = "lan"
//! display_name = "Nguyễn Thị Lan"
//! role = "school:th-kim-dong"   # or "district", or "police"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! must_change = true            # a one-time password: changed at first sign-in
//! disabled = false
//! ```
//!
//! Passwords are stored only as Argon2id hashes (OWASP's parameters: 19 MiB, 2 passes). A new
//! or reset password is a one-time password printed once and marked `must_change`. Edits hold
//! the file's lock and replace it atomically, readable by its owner only (`crate::files`).

use std::path::Path;

use anyhow::{Context, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Deserialize;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

/// What a person may do in the console: the same roles as the API's tokens.
pub use crate::access::Role as ConsoleRole;

/// One person, as the file holds them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Sign-in name.
    pub name: String,
    /// Shown in the console.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `district`, `police` or `school:<id>`.
    pub role: String,
    /// The Argon2id hash (PHC string).
    pub password: String,
    /// The password is a one-time password: it must be changed at first sign-in.
    #[serde(default)]
    pub must_change: bool,
    /// May not sign in.
    #[serde(default)]
    pub disabled: bool,
    /// When the user was added (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl User {
    /// The role, if it is one of the three forms.
    pub fn role(&self) -> Option<ConsoleRole> {
        ConsoleRole::parse(&self.role)
    }

    /// Whether `password` is this user's (constant-time comparison inside Argon2).
    pub fn verify(&self, password: &str) -> bool {
        PasswordHash::new(&self.password).is_ok_and(|hash| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<User>,
}

/// Reads the users file (none yet: no users). Errors name the file and line.
pub fn read(path: &Path) -> anyhow::Result<Vec<User>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(path, &text)
}

/// Parses users-file text, checking names and roles.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<User>> {
    let file: UsersFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .unwrap_or(0);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
    })?;
    let mut seen = Vec::new();
    for user in &file.users {
        if let Some(problem) = name_problem(&user.name) {
            bail!("{}: user {:?}: {problem}", path.display(), user.name);
        }
        if seen.contains(&user.name) {
            bail!("{}: user {:?} is listed twice", path.display(), user.name);
        }
        seen.push(user.name.clone());
        if user.role().is_none() {
            bail!(
                "{}: user {:?}: role {:?} is not district, police or school:<id>",
                path.display(),
                user.name,
                user.role
            );
        }
        if PasswordHash::new(&user.password).is_err() {
            bail!(
                "{}: user {:?}: password is not an Argon2 hash (set one with `schooldns users passwd`)",
                path.display(),
                user.name
            );
        }
    }
    Ok(file.users)
}

/// Why a sign-in name cannot be used, if it cannot: 1 to 64 lowercase letters, digits, `.`,
/// `_` or `-`.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    (!ok).then_some("a user name is 1 to 64 lowercase letters, digits, `.`, `_` or `-`")
}

/// Letters of one-time passwords: no `0/O`, `1/l/I`, easy to read out over the phone.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A one-time password: 16 letters from the CSPRNG (80 bits), in groups of four.
pub fn one_time_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system's random source: {e}"))?;
    let letters: Vec<char> = bytes
        .iter()
        .map(|b| PASSWORD_ALPHABET[usize::from(b % PASSWORD_ALPHABET.len() as u8)] as char)
        .collect();
    Ok(letters
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The Argon2id hash of `password` with a fresh salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("the system's random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

const NEW_FILE_HEADER: &str = "# schooldns console users: one [[users]] entry each.\n\
# Edit with `schooldns users add | passwd | disable`; the server reloads this file when it\n\
# changes. Passwords are Argon2id hashes; the file is readable by its owner only.\n";

/// Adds a user with a one-time password; returns the password (shown once).
pub fn add(
    path: &Path,
    name: &str,
    role: &ConsoleRole,
    display_name: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(problem) = name_problem(name) {
        bail!("{name:?}: {problem}");
    }
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    if find(&mut doc, name)?.is_some() {
        bail!("a user {name:?} already exists in {}", path.display());
    }
    let password = one_time_password()?;
    let mut user = Table::new();
    user["name"] = value(name);
    if let Some(display) = display_name {
        user["display_name"] = value(display);
    }
    user["role"] = value(role.to_string());
    user["password"] = value(hash(&password)?);
    user["must_change"] = value(true);
    user["created_at"] = value(now()?);
    users_array(&mut doc)?.push(user);
    write_checked(path, &doc)?;
    Ok(password)
}

/// Gives a user a new one-time password (and enables them again); returns it.
pub fn passwd(path: &Path, name: &str) -> anyhow::Result<String> {
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    let password = one_time_password()?;
    let hashed = hash(&password)?;
    let Some(user) = find(&mut doc, name)? else {
        bail!("no user {name:?} in {}", path.display());
    };
    user["password"] = value(hashed);
    user["must_change"] = value(true);
    user.remove("disabled");
    write_checked(path, &doc)?;
    Ok(password)
}

/// Sets a password the user chose (the console's "change password"), clearing `must_change`.
pub fn set_password(path: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    let hashed = hash(password)?;
    let Some(user) = find(&mut doc, name)? else {
        bail!("no user {name:?} in {}", path.display());
    };
    user["password"] = value(hashed);
    user.remove("must_change");
    write_checked(path, &doc)
}

/// Disables a user: they can no longer sign in (their sessions end at the next reload).
pub fn disable(path: &Path, name: &str) -> anyhow::Result<()> {
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    let Some(user) = find(&mut doc, name)? else {
        bail!("no user {name:?} in {}", path.display());
    };
    if user.get("disabled").and_then(Item::as_bool) == Some(true) {
        bail!("user {name:?} is already disabled");
    }
    user["disabled"] = value(true);
    write_checked(path, &doc)
}

fn now() -> anyhow::Result<String> {
    Ok(jiff::Timestamp::now()
        .round(jiff::Unit::Second)?
        .to_string())
}

fn read_document(path: &Path) -> anyhow::Result<DocumentMut> {
    crate::files::read_document(path, NEW_FILE_HEADER, |text| parse(path, text).map(|_| ()))
}

fn users_array(doc: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    crate::files::tables(doc, "users")
}

fn find<'a>(doc: &'a mut DocumentMut, name: &str) -> anyhow::Result<Option<&'a mut Table>> {
    Ok(users_array(doc)?
        .iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(name)))
}

/// Checks that the edited text parses, then replaces the file atomically, owner-only.
fn write_checked(path: &Path, doc: &DocumentMut) -> anyhow::Result<()> {
    let text = doc.to_string();
    parse(path, &text).context("the edited users file would not parse")?;
    crate::files::replace(path, &text, Some(0o600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_and_print_alike() {
        for text in ["district", "police", "school:th-kim-dong"] {
            assert_eq!(ConsoleRole::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(ConsoleRole::parse("school:"), None);
        assert_eq!(ConsoleRole::parse("admin"), None);
    }

    #[test]
    fn one_time_passwords_are_long_and_differ() {
        let a = one_time_password().unwrap();
        let b = one_time_password().unwrap();
        assert_eq!(a.len(), 19);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c == '-' || PASSWORD_ALPHABET.contains(&(c as u8)))
        );
    }

    #[test]
    fn a_user_is_added_changed_and_disabled_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let first = add(&path, "lan", &ConsoleRole::Police, Some("Nguyễn Thị Lan")).unwrap();
        let users = read(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users[0].verify(&first) && !users[0].verify("wrong"));
        assert!(users[0].must_change);
        assert!(users[0].password.starts_with("$argon2id$"));
        assert!(add(&path, "lan", &ConsoleRole::District, None).is_err());
        set_password(&path, "lan", "a chosen passphrase").unwrap();
        let users = read(&path).unwrap();
        assert!(users[0].verify("a chosen passphrase") && !users[0].must_change);
        disable(&path, "lan").unwrap();
        assert!(read(&path).unwrap()[0].disabled);
        let again = passwd(&path, "lan").unwrap();
        let users = read(&path).unwrap();
        assert!(!users[0].disabled && users[0].must_change && users[0].verify(&again));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_file_names_its_line() {
        let err = parse(
            Path::new("u.toml"),
            "[[users]]\nname = \"x\"\nrole = \"admin\"\npassword = \"p\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("role"), "{err}");
        let err = parse(Path::new("u.toml"), "[[users]]\nname = \"x\"\nrolle = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("u.toml:3:"), "{err}");
    }
}
