//! Checks on values serde cannot judge alone: admin tokens and their roles, hit-log time zone
//! and retention overrides, TLS settings, the upstreams' certificate authorities. Each error names the file, line and key, like a syntax error.
//! (Category, profile, network and list checks need the lists and live in `policy::compile`.)

use super::{ConfigError, LoadedConfig};

use crate::policy::BUILT_IN_CATEGORIES;

/// Runs every check; the first failure is returned.
pub fn check(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    check_tokens(loaded)?;
    check_hitlog(loaded)?;
    check_tls(loaded)?;
    check_upstream(loaded)
}

/// `[upstream] ca_file` must hold at least one readable PEM certificate.
fn check_upstream(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let (config, source) = (&loaded.config, &loaded.source);
    if let Some(ca_file) = &config.upstream.ca_file
        && let Err(why) = crate::resolve::encrypted::client_config(Some(ca_file))
    {
        return Err(source.error("upstream.ca_file", why));
    }
    Ok(())
}

/// Encrypted listeners need a certificate, its key and the public hostname that tokens are
/// prefixed to; the hostname must be a DNS name, since `<token>.<hostname>` is one.
fn check_tls(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let (config, source) = (&loaded.config, &loaded.source);
    let tls = &config.tls;
    if let Some(hostname) = &tls.hostname {
        let name = hostname.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 200
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(source.error_at(
                hostname.span(),
                "tls.hostname",
                format!("`{name}` is not a DNS host name (e.g. dns.example.edu.vn)"),
            ));
        }
    }
    let encrypted = !config.server.dot.is_empty() || !config.server.doh.is_empty();
    if encrypted {
        for (key, missing) in [
            ("tls.cert", tls.cert.is_none()),
            ("tls.key", tls.key.is_none()),
            ("tls.hostname", tls.hostname.is_none()),
        ] {
            if missing {
                return Err(source.error(
                    key,
                    "`[server] dot` and `doh` need `[tls] cert`, `key` and `hostname`",
                ));
            }
        }
    }
    if tls.max_connections == 0 {
        return Err(source.error("tls.max_connections", "must be at least 1"));
    }
    if tls.idle_timeout_secs == 0 {
        return Err(source.error("tls.idle_timeout_secs", "must be at least 1 second"));
    }
    Ok(())
}

fn check_tokens(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let (config, source) = (&loaded.config, &loaded.source);
    let mut seen: Vec<String> = Vec::new();
    for (i, token) in config.admin.tokens.iter().enumerate() {
        let key = |field: &str| format!("admin.tokens[{i}].{field}");
        let hash = token.sha256.get_ref().trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(source.error_at(
                token.sha256.span(),
                &key("sha256"),
                "expected the token's SHA-256 as 64 hex digits \
                 (e.g. `printf %s \"$TOKEN\" | sha256sum`)",
            ));
        }
        let hash = hash.to_ascii_lowercase();
        if seen.contains(&hash) {
            return Err(source.error_at(
                token.sha256.span(),
                &key("sha256"),
                "this token is listed twice; give each token one role",
            ));
        }
        seen.push(hash);
        let role = token.role.get_ref().as_str();
        let valid = match role.strip_prefix("school:") {
            Some(id) => config.schools.iter().any(|s| s.id.get_ref() == id),
            None => role == "district" || role == "police",
        };
        if !valid {
            let known: Vec<&str> = config
                .schools
                .iter()
                .map(|s| s.id.get_ref().as_str())
                .collect();
            return Err(source.error_at(
                token.role.span(),
                &key("role"),
                format!(
                    "unknown role `{role}`: expected `district`, `police` or `school:<id>` with one of \
                     the configured school ids ({})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a connection URL carries a password (`postgres://user:secret@host/db` or
/// `password=` in key-value form).
fn url_has_password(url: &str) -> bool {
    match url.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            authority
                .rsplit_once('@')
                .is_some_and(|(user, _)| user.contains(':'))
                || rest.contains("password=")
        }
        None => url.contains("password="),
    }
}

fn check_hitlog(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let (config, source) = (&loaded.config, &loaded.source);
    let hitlog = &config.hitlog;
    if let Some(zone) = &hitlog.timezone
        && let Err(e) = jiff::tz::TimeZone::get(zone.get_ref())
    {
        return Err(source.error_at(
            zone.span(),
            "hitlog.timezone",
            format!(
                "unknown time zone `{}` ({e}); use an IANA name such as Asia/Ho_Chi_Minh",
                zone.get_ref()
            ),
        ));
    }
    if hitlog.retention_days == 0 {
        return Err(source.error("hitlog.retention_days", "must be at least 1 day"));
    }
    if hitlog.queue == 0 {
        return Err(source.error("hitlog.queue", "must be at least 1"));
    }
    if hitlog.backend == crate::config::HitlogBackend::Postgres {
        let Some(url) = &hitlog.url else {
            return Err(source.error(
                "hitlog.backend",
                "`postgres` needs `url` in [hitlog] (postgres://user@host:5432/database)",
            ));
        };
        if let Err(e) = url.get_ref().parse::<postgres::Config>() {
            return Err(source.error_at(
                url.span(),
                "hitlog.url",
                format!("not a PostgreSQL URL: {e}"),
            ));
        }
        if url_has_password(url.get_ref()) {
            return Err(source.error_at(
                url.span(),
                "hitlog.url",
                "holds a password: put it in the file `password_file` names instead",
            ));
        }
        if hitlog.spool_max_mb == 0 {
            return Err(source.error("hitlog.spool_max_mb", "must be at least 1"));
        }
    }
    if let Some(id) = &hitlog.instance
        && (id.get_ref().is_empty()
            || id.get_ref().len() > 64
            || !id
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    {
        return Err(source.error_at(
            id.span(),
            "hitlog.instance",
            "must be 1 to 64 letters, digits, `-`, `_` or `.`",
        ));
    }
    for (category, days) in &hitlog.category_retention_days {
        let key = format!("hitlog.category_retention_days.{category}");
        if !config.categories.contains_key(category)
            && !BUILT_IN_CATEGORIES.contains(&category.as_str())
        {
            return Err(source.error_at(
                days.span(),
                &key,
                format!("no category `{category}` is configured"),
            ));
        }
        if *days.get_ref() == 0 {
            return Err(source.error_at(days.span(), &key, "must be at least 1 day"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::LoadedConfig;

    const SCHOOL: &str =
        "[[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"10.0.0.0/8\"]\nprofile = \"p\"\n";

    fn parse(text: &str) -> Result<LoadedConfig, super::ConfigError> {
        LoadedConfig::parse(Path::new("c.toml"), format!("{SCHOOL}{text}"))
    }

    #[test]
    fn tokens_need_a_hash_and_a_known_role() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        parse(&format!(
            "[[admin.tokens]]\nsha256 = \"{hash}\"\nrole = \"school:a\"\n"
        ))
        .unwrap();
        let err = parse("[[admin.tokens]]\nsha256 = \"abc\"\nrole = \"district\"\n").unwrap_err();
        assert_eq!(
            (err.line, err.key.as_str()),
            (7, "admin.tokens[0].sha256"),
            "{err}"
        );
        let err = parse(&format!(
            "[[admin.tokens]]\nsha256 = \"{hash}\"\nrole = \"school:b\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            (err.line, err.key.as_str()),
            (8, "admin.tokens[0].role"),
            "{err}"
        );
        assert!(err.message.contains("school:<id>"), "{err}");
        let twice = format!(
            "[[admin.tokens]]\nsha256 = \"{hash}\"\nrole = \"district\"\n\
             [[admin.tokens]]\nsha256 = \"{}\"\nrole = \"school:a\"\n",
            hash.to_uppercase()
        );
        let err = parse(&twice).unwrap_err();
        assert_eq!(err.key, "admin.tokens[1].sha256", "{err}");
    }

    #[test]
    fn hitlog_values_are_checked() {
        let err = parse("[hitlog]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert_eq!(
            (err.line, err.key.as_str()),
            (7, "hitlog.timezone"),
            "{err}"
        );
        parse("[hitlog]\ntimezone = \"Asia/Ho_Chi_Minh\"\n").unwrap();
        let err = parse("[hitlog.category_retention_days]\nmalwar = 365\n").unwrap_err();
        assert_eq!(err.key, "hitlog.category_retention_days.malwar", "{err}");
        assert_eq!(err.line, 7, "{err}");
        parse("[hitlog.category_retention_days]\nbypass-protection = 365\n").unwrap();
        let err = parse("[hitlog]\nclient_address = \"partial\"\n").unwrap_err();
        assert_eq!(err.key, "hitlog.client_address", "{err}");
    }

    #[test]
    fn encrypted_listeners_need_tls_settings() {
        let err = parse("[server]\ndot = [\"127.0.0.1:8853\"]\n").unwrap_err();
        assert_eq!(err.key, "tls.cert", "{err}");
        let err = parse(
            "[server]\ndoh = [\"127.0.0.1:8443\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "tls.hostname", "{err}");
        let err = parse("[tls]\nhostname = \"dns example\"\n").unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (7, "tls.hostname"), "{err}");
        parse(
            "[server]\ndot = [\"127.0.0.1:8853\"]\n\
             [tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nhostname = \"dns.example.edu.vn\"\n",
        )
        .unwrap();
    }
}
