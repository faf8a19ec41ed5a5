//! What a reload changes in the running server, in one place: the reloaded config is handed to
//! [`Live::follow`] right after its policy is swapped in, and every setting that can change
//! while serving is applied here; each one that cannot is named, so the operator is told (in
//! the log, `POST /reload` and `schooldns reload`) instead of it being silently ignored.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::encrypted::Encrypted;
use super::tls::CertStore;
use crate::access::Access;
use crate::config::Config;
use crate::devices::setup::SetupPages;
use crate::query::refusals::RefusalLimit;
use crate::resolve::Resolver;
use crate::resolve::upstream::Upstreams;
use crate::subscriptions::Refresher;

/// The parts of the running server a reload updates.
pub struct Live {
    /// The config the listeners, slots and hit log were started with.
    pub started: Config,
    /// The config last applied.
    pub current: Mutex<Config>,
    /// Bearer tokens for the read API.
    pub access: Arc<ArcSwap<Access>>,
    /// Setup pages.
    pub setup: Arc<SetupPages>,
    /// DoT/DoH shared state, when configured.
    pub encrypted: Option<Arc<Encrypted>>,
    /// The TLS certificate, when configured.
    pub certs: Option<Arc<CertStore>>,
    /// Cache and upstreams.
    pub resolver: Arc<Resolver>,
    /// Refusal budgets.
    pub refusals: Arc<RefusalLimit>,
    /// The subscription refresher's control channel.
    pub refresher: Mutex<mpsc::Sender<Refresher>>,
}

impl Live {
    /// Applies what `config` changes; returns the keys that differ from the started config
    /// but need a restart.
    pub fn follow(&self, config: &Config) -> Vec<String> {
        self.access
            .store(Arc::new(Access::from_config(&config.admin)));
        self.setup.update(config);
        if let Some(encrypted) = &self.encrypted {
            encrypted.update(config);
        }
        if let Some(certs) = &self.certs {
            certs.refresh(&config.tls);
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let (new, old) = (&config.upstream, &current.upstream);
        if new.servers != old.servers
            || new.timeout_ms != old.timeout_ms
            || new.retry_after_secs != old.retry_after_secs
        {
            self.resolver.set_upstreams(Upstreams::new(
                &new.servers,
                Duration::from_millis(new.timeout_ms),
                Duration::from_secs(new.retry_after_secs),
            ));
            tracing::info!(servers = ?new.servers, "upstreams reloaded");
        }
        self.resolver.cache().set_limits(
            config.cache.max_entries,
            Duration::from_secs(config.cache.stale_max),
        );
        self.refusals
            .set_per_second(config.server.refused_per_second);
        if let Ok(refresher) = self.refresher.lock() {
            let _ = refresher.send(Refresher::Config(Box::new(config.clone())));
        }
        *current = config.clone();
        restart_needed(&self.started, config)
    }
}

/// The settings that differ between `started` and `new` and that only a restart applies:
/// sockets, slot tables, the hit log's writer and the reload thread are set up once.
pub fn restart_needed(started: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    // `differs!(server.udp)` names the key `server.udp` when it changed.
    macro_rules! differs {
        ($($key:ident).+) => {
            if started.$($key).+ != new.$($key).+ {
                keys.push(stringify!($($key).+).replace(' ', ""));
            }
        };
    }
    differs!(server.udp);
    differs!(server.tcp);
    differs!(server.dot);
    differs!(server.doh);
    differs!(server.max_tcp_connections);
    differs!(server.max_connections_per_address);
    differs!(server.tcp_idle_timeout_secs);
    // DoT and DoH follow a new write deadline; TCP and admin connections keep theirs.
    differs!(server.write_timeout_secs);
    differs!(admin.listen);
    differs!(admin.max_connections);
    differs!(admin.max_connections_per_address);
    differs!(tls.max_connections);
    differs!(reload.debounce_ms);
    differs!(reload.max_shrink);
    // The hit log's writer, its file and its JSON sink are started once.
    differs!(hitlog.enabled);
    differs!(hitlog.path);
    differs!(hitlog.client_address);
    differs!(hitlog.retention_days);
    differs!(hitlog.repeat_window_secs);
    differs!(hitlog.queue);
    differs!(hitlog.json);
    // Compared by value: the config's spans move when other lines do.
    let retention = |c: &Config| {
        c.hitlog
            .category_retention_days
            .iter()
            .map(|(k, v)| (k.clone(), *v.get_ref()))
            .collect::<Vec<_>>()
    };
    if retention(started) != retention(new) {
        keys.push("hitlog.category_retention_days".to_string());
    }
    let timezone = |c: &Config| c.hitlog.timezone.as_ref().map(|t| t.get_ref().clone());
    if timezone(started) != timezone(new) {
        keys.push("hitlog.timezone".to_string());
    }
    keys
}
