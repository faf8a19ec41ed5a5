//! The one live state: everything a reload can change, in one [`Snapshot`] behind one
//! `ArcSwap`, and [`Live::apply`], the one place a reloaded config is followed.
//!
//! A query loads the snapshot once and sees one consistent world: the policy (with its devices
//! and tokens), the config it was compiled from (cache limits, refusal budget, TLS hostname and
//! timeouts, setup-page endpoints), the admin tokens, the upstreams and the console's users. A reload builds the
//! next snapshot beside the query path and swaps it in whole; the upstreams are kept (with
//! their round-trip history) when `[upstream]` did not change. What a snapshot cannot hold is
//! followed here too: the TLS certificate is re-read, and the subscription refresher gets the
//! new URLs at once, and the hit log's writer the new `[hitlog]`. Every changed setting that only a restart applies (sockets, slot tables,
//! the hit log's writer) is named, so the operator is told in the log, in `POST /reload` and in
//! `schooldns reload`, never silently ignored.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};

use crate::access::Access;
use crate::config::Config;
use crate::console::users::User;
use crate::hitlog::HitSender;
use crate::policy::Policy;
use crate::resolve::upstream::Upstreams;
use crate::server::tls::CertStore;
use crate::subscriptions::Refresher;

/// Everything a reload can change, as one value.
pub struct Snapshot {
    /// The config the policy was compiled from.
    pub config: Arc<Config>,
    /// The policy: categories, profiles, schools, devices and their tokens.
    pub policy: Arc<Policy>,
    /// Bearer tokens of the admin API.
    pub access: Access,
    /// The upstream resolvers and their health.
    pub upstreams: Arc<Upstreams>,
    /// The console's people (`[console] users`), re-read at each reload.
    pub users: Arc<Vec<User>>,
}

/// The users file's people; a file that cannot be read keeps `previous` (and says why).
fn users_of(config: &Config, previous: Option<&Arc<Vec<User>>>) -> Arc<Vec<User>> {
    let Some(path) = &config.console.users else {
        return Arc::new(Vec::new());
    };
    match crate::console::users::read(path) {
        Ok(users) => Arc::new(users),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "the console's users file cannot be read; the previous users stay");
            previous.cloned().unwrap_or_default()
        }
    }
}

impl Snapshot {
    /// `[cache] stale_max`.
    pub fn stale_max(&self) -> Duration {
        Duration::from_secs(self.config.cache.stale_max)
    }
}

fn upstreams_of(config: &Config) -> Upstreams {
    Upstreams::new(&config.upstream)
}

/// The live state and what follows it.
pub struct Live {
    state: ArcSwap<Snapshot>,
    /// The config the listeners, slot tables and hit log were started with.
    started: Config,
    /// The TLS certificate, when DoT or DoH is configured.
    certs: Mutex<Option<Arc<CertStore>>>,
    /// The subscription refresher's control channel.
    refresher: Mutex<Option<mpsc::Sender<Refresher>>>,
    /// The hit log's writer.
    hits: Mutex<Option<HitSender>>,
}

impl Live {
    /// The first snapshot, from the config read at start and its policy.
    pub fn new(config: &Config, policy: Policy) -> Live {
        Live {
            state: ArcSwap::from_pointee(Snapshot {
                config: Arc::new(config.clone()),
                policy: Arc::new(policy),
                access: Access::from_config(&config.admin),
                upstreams: Arc::new(upstreams_of(config)),
                users: users_of(config, None),
            }),
            started: config.clone(),
            certs: Mutex::new(None),
            refresher: Mutex::new(None),
            hits: Mutex::new(None),
        }
    }

    /// Also follows the certificate (re-read at each reload).
    pub fn follow_certs(&self, certs: Arc<CertStore>) {
        *self.certs.lock().unwrap_or_else(|e| e.into_inner()) = Some(certs);
    }

    /// Also tells the subscription refresher about each reloaded config.
    pub fn follow_subscriptions(&self, refresher: mpsc::Sender<Refresher>) {
        *self.refresher.lock().unwrap_or_else(|e| e.into_inner()) = Some(refresher);
    }

    /// Also hands each reloaded `[hitlog]` to the hit log's writer.
    pub fn follow_hits(&self, hits: HitSender) {
        *self.hits.lock().unwrap_or_else(|e| e.into_inner()) = Some(hits);
    }

    /// The snapshot now; the query path's one load.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.state.load()
    }

    /// The snapshot now, owned (to keep across an await).
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.state.load_full()
    }

    /// The policy now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.state.load().policy)
    }

    /// Swaps in a reloaded config and its policy; returns the changed settings that need a
    /// restart.
    pub fn apply(&self, config: &Config, policy: Arc<Policy>) -> Vec<String> {
        let old = self.state.load_full();
        let (new, was) = (&config.upstream, &old.config.upstream);
        let same = new.servers == was.servers
            && new.timeout_ms == was.timeout_ms
            && new.retry_after_secs == was.retry_after_secs
            && new.ca_file == was.ca_file;
        let upstreams = if same {
            Arc::clone(&old.upstreams)
        } else {
            tracing::info!(servers = ?config.upstream.servers, "upstreams reloaded");
            Arc::new(upstreams_of(config))
        };
        self.state.store(Arc::new(Snapshot {
            config: Arc::new(config.clone()),
            policy,
            access: Access::from_config(&config.admin),
            upstreams,
            users: users_of(config, Some(&old.users)),
        }));
        if let Some(certs) = &*self.certs.lock().unwrap_or_else(|e| e.into_inner()) {
            certs.refresh(&config.tls);
        }
        if let Some(refresher) = &*self.refresher.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = refresher.send(Refresher::Config(Box::new(config.clone())));
        }
        if let Some(hits) = &*self.hits.lock().unwrap_or_else(|e| e.into_inner()) {
            hits.follow(&config.hitlog);
        }
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
    differs!(admin.tls);
    differs!(admin.cert);
    differs!(admin.key);
    differs!(tls.max_connections);
    differs!(reload.debounce_ms);
    differs!(reload.max_shrink);
    // The hit log's writer, its file, its queue and its JSON sink are started once; client
    // addresses, the repeat window, retention and the time zone follow a reload.
    differs!(hitlog.enabled);
    differs!(hitlog.path);
    differs!(hitlog.queue);
    differs!(hitlog.json);
    differs!(hitlog.backend);
    differs!(hitlog.url);
    differs!(hitlog.password_file);
    differs!(hitlog.spool_max_mb);
    differs!(hitlog.instance);
    // The sync thread and the working folder are set up once.
    differs!(sync);
    keys
}
