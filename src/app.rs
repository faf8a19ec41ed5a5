//! The one place the application is wired: [`App::bind`] reads and compiles the config, builds
//! the live state, the pipeline, the hit log, the admin API, the reload and subscription
//! threads, and binds every listener (port 0 works, and [`App::udp_addrs`]/[`App::tcp_addrs`]
//! report the ports the system chose), so a caller — `schooldns serve` or a test — knows where
//! to send queries before [`App::run`] starts answering. Shutdown: stop accepting, let queries in
//! flight finish (up to a few seconds), write the hit log out, stop the threads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminState, HitReader};
use crate::config::LoadedConfig;
use crate::devices::setup::SetupPages;
use crate::hitlog::HitLog;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::policy::Compiler;
use crate::query::Pipeline;
use crate::query::refusals::RefusalLimit;
use crate::reload::{self, ReloadStats, Reloader, Trigger};
use crate::resolve::Resolver;
use crate::server::encrypted::Encrypted;
use crate::server::tls::{self, CertStore};
use crate::server::{bind_udp, doh, dot, slots, stream, tcp, udp};
use crate::subscriptions;

/// Most UDP queries handled at once; beyond it, reading waits (back-pressure, not loss).
const MAX_UDP_IN_FLIGHT: usize = 4096;
/// How long shutdown waits for queries in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// A bound, not yet running server.
pub struct App {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
    pipeline: Arc<Pipeline>,
    live: Arc<Live>,
    resolver: Arc<Resolver>,
    reload_stats: Arc<ReloadStats>,
    /// Wakes the reload thread (file events arrive on their own).
    reload_trigger: mpsc::Sender<Trigger>,
    reload_thread: std::thread::JoinHandle<()>,
    admin: Option<TcpListener>,
    /// `[admin] tls`: the admin listener's TLS.
    admin_tls: Option<TlsAcceptor>,
    admin_state: Arc<AdminState>,
    /// Downloads subscriptions beside the query path; stopped through `refresher_control`.
    refresher: std::thread::JoinHandle<()>,
    refresher_control: mpsc::Sender<subscriptions::Refresher>,
    /// The hit-log writer; stopped (everything buffered written) after the last query.
    hitlog: HitLog,
    /// Keeps every place's rules in time current.
    schedule_timer: crate::schedule_timer::ScheduleTimer,
    /// Pulls the config origin (`[sync]`), when there is one.
    syncer: Option<crate::sync::Syncer>,
    /// DoT listeners, with their TLS acceptor.
    dot: Vec<TcpListener>,
    /// DoH listeners.
    doh: Vec<TcpListener>,
    /// What the encrypted listeners share, when any is configured.
    encrypted: Option<(Arc<Encrypted>, TlsAcceptor, TlsAcceptor)>,
    /// Plain-DNS TCP connection slots and timeouts.
    tcp_slots: Arc<slots::Slots>,
    tcp_timeouts: stream::Timeouts,
}

impl App {
    /// Loads and compiles `config_path` and binds its listeners, one UDP socket per address.
    pub async fn bind(config_path: &Path) -> anyhow::Result<App> {
        App::bind_with(config_path, 1).await
    }

    /// Like [`App::bind`], with `udp_sockets` sockets per UDP address sharing it through
    /// `SO_REUSEPORT`, so that the kernel spreads queries over that many worker threads.
    pub async fn bind_with(config_path: &Path, udp_sockets: usize) -> anyhow::Result<App> {
        // Absolute: with a config origin the working folder becomes the origin's copy.
        let config_path = &std::fs::canonicalize(config_path).unwrap_or(config_path.to_path_buf());
        let path: PathBuf = config_path.to_path_buf();
        let (loaded, compiler, policy, synced) = tokio::task::spawn_blocking(move || {
            // With `[sync] origin`: the first pull if the copy is empty, then work in it.
            let synced = crate::sync::prepare(&path)?;
            let loaded = LoadedConfig::read(&path)?;
            // Fetch subscriptions before the first compile; failures keep the last good copies.
            let agent = subscriptions::agent(Duration::from_secs(
                loaded.config.subscriptions.timeout_secs,
            ));
            subscriptions::refresh_all(&loaded.config, &agent);
            let mut compiler = Compiler::default();
            let policy = compiler.compile(&loaded)?;
            anyhow::Ok((loaded, compiler, policy, synced))
        })
        .await??;
        let config = &loaded.config;
        let live = Arc::new(Live::new(config, policy));
        let resolver = Arc::new(Resolver::new());
        let metrics = Arc::new(Metrics::default());
        let status: crate::hitlog::postgres::ship::StatusSource = {
            let (live, metrics, synced) = (Arc::clone(&live), Arc::clone(&metrics), synced.clone());
            Arc::new(move || crate::hitlog::postgres::ship::InstanceStatus {
                policy_version: format!("{:016x}", live.policy().version()),
                config_version: synced
                    .as_ref()
                    .and_then(|s| (*s.version.load_full()).clone()),
                queries: metrics.total_queries(),
                sync_error: synced.as_ref().and_then(|s| (*s.error.load_full()).clone()),
            })
        };
        let hitlog =
            HitLog::start_with(&config.hitlog, status).context("starting the hit-log writer")?;
        live.follow_hits(hitlog.sender());
        let refusals = Arc::new(RefusalLimit::new());
        let checks = Arc::new(crate::devices::check::DeviceChecks::default());
        let pipeline = Arc::new(Pipeline::new(
            Arc::clone(&live),
            Arc::clone(&resolver),
            Arc::clone(&metrics),
            hitlog.sender(),
            Arc::clone(&refusals),
            Arc::clone(&checks),
        ));
        let mut udp = Vec::new();
        for addr in &config.server.udp {
            let first =
                bind_udp(*addr, udp_sockets > 1).map_err(|e| bind_error("UDP", *addr, e))?;
            // Port 0 picks a port once; the other sockets join that port.
            let bound = first.local_addr()?;
            udp.push(Arc::new(first));
            for _ in 1..udp_sockets {
                let socket = bind_udp(bound, true).map_err(|e| bind_error("UDP", bound, e))?;
                udp.push(Arc::new(socket));
            }
        }
        let mut tcp = Vec::new();
        for addr in &config.server.tcp {
            tcp.push(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| bind_error("TCP", *addr, e))?,
            );
        }
        let bind_all = async |addrs: &[SocketAddr], what: &str| {
            let mut listeners = Vec::new();
            for addr in addrs {
                listeners.push(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| bind_error(what, *addr, e))?,
                );
            }
            anyhow::Ok(listeners)
        };
        let dot = bind_all(&config.server.dot, "DoT").await?;
        let doh = bind_all(&config.server.doh, "DoH").await?;
        let port_of = |ls: &[TcpListener]| {
            ls.first()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.port())
        };
        let setup = Arc::new(SetupPages::new(
            Arc::clone(&live),
            (port_of(&dot), port_of(&doh)),
            checks,
        ));
        let (encrypted, certs) = if dot.is_empty() && doh.is_empty() {
            (None, None)
        } else {
            let certs =
                Arc::new(CertStore::load(&config.tls).context("loading [tls] cert and key")?);
            let dot_acceptor = TlsAcceptor::from(tls::server_config(&certs, &[tls::ALPN_DOT]));
            let doh_acceptor = TlsAcceptor::from(tls::server_config(&certs, &[b"h2", b"http/1.1"]));
            live.follow_certs(Arc::clone(&certs));
            let shared = Arc::new(Encrypted::new(
                config,
                Arc::clone(&live),
                Arc::clone(&pipeline),
                Arc::clone(&setup),
            ));
            (Some((shared, dot_acceptor, doh_acceptor)), Some(certs))
        };
        let mut reloader = Reloader::new(
            config_path.to_path_buf(),
            compiler,
            Arc::clone(&live),
            config.reload.max_shrink,
        );
        reloader.watch_files(config.watched_files());
        let reload_stats = reloader.stats();
        let (refresher_control, refresher_rx) = mpsc::channel();
        live.follow_subscriptions(refresher_control.clone());
        // The admin listener over TLS: its own certificate, or the [tls] one (followed on
        // reload like DoT's and DoH's).
        let admin_tls = if config.admin.tls {
            let store = match (&config.admin.cert, &config.admin.key, &certs) {
                (Some(cert), Some(key), _) => Arc::new(
                    CertStore::load(&crate::config::TlsConfig {
                        cert: Some(cert.clone()),
                        key: Some(key.clone()),
                        ..config.tls.clone()
                    })
                    .context("loading [admin] cert and key")?,
                ),
                (None, None, Some(certs)) => Arc::clone(certs),
                (None, None, None) => {
                    let certs = Arc::new(
                        CertStore::load(&config.tls)
                            .context("[admin] tls: loading [tls] cert and key")?,
                    );
                    live.follow_certs(Arc::clone(&certs));
                    certs
                }
                _ => anyhow::bail!("[admin] cert and key go together"),
            };
            Some(TlsAcceptor::from(tls::server_config(
                &store,
                &[b"http/1.1"],
            )))
        } else {
            None
        };
        if let Some(warning) = config.admin.plaintext_warning() {
            tracing::warn!("{warning}");
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| bind_error("the admin listener", addr, e))?,
            ),
            None => None,
        };
        let (reload_trigger, reload_thread) =
            reload::spawn(reloader, Duration::from_millis(config.reload.debounce_ms))
                .context("starting the reload thread")?;
        let tcp_slots = slots::Slots::new(
            "tcp",
            config.server.max_tcp_connections,
            config.server.max_connections_per_address,
        );
        let tcp_timeouts = stream::Timeouts {
            idle: Duration::from_secs(config.server.tcp_idle_timeout_secs),
            write: Duration::from_secs(config.server.write_timeout_secs),
        };
        let admin_slots = slots::Slots::new(
            "admin",
            config.admin.max_connections,
            config.admin.max_connections_per_address,
        );
        let mut all_slots = vec![Arc::clone(&tcp_slots), Arc::clone(&admin_slots)];
        if let Some((shared, _, _)) = &encrypted {
            all_slots.push(Arc::clone(&shared.slots));
        }
        let admin_state = Arc::new(AdminState {
            metrics,
            refusals,
            slots: all_slots,
            admin_slots,
            write_timeout: Duration::from_secs(config.server.write_timeout_secs),
            resolver: Arc::clone(&resolver),
            reloads: Arc::clone(&reload_stats),
            live: Arc::clone(&live),
            reload: std::sync::Mutex::new(reload_trigger.clone()),
            hits: Arc::clone(hitlog.sender().stats()),
            hit_log: hitlog.sender(),
            reader: HitReader::new(&config.hitlog),
            setup,
            encrypted: encrypted.as_ref().map(|(shared, _, _)| Arc::clone(shared)),
            certs,
            console: crate::console::Console::new(config.admin.tls),
            ship: hitlog.ship_stats(),
            instance: config.hitlog.instance_id(),
            sync: synced.clone(),
            publisher: std::sync::Mutex::new(None),
        });
        let syncer = match &synced {
            Some(status) => {
                let syncer = crate::sync::Syncer::spawn(
                    config_path,
                    config.hitlog.instance_id(),
                    Arc::clone(status),
                    reload_trigger.clone(),
                )
                .context("starting the config sync thread")?;
                *admin_state
                    .publisher
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(syncer.publisher());
                Some(syncer)
            }
            None => None,
        };
        let trigger = reload_trigger.clone();
        let refresher = subscriptions::spawn_refresher(
            config.clone(),
            refresher_rx,
            Box::new(move || {
                let _ = trigger.send(Trigger::FileEvent);
            }),
        )
        .context("starting the subscription thread")?;
        let schedule_timer = crate::schedule_timer::ScheduleTimer::spawn(Arc::clone(&live))
            .context("starting the schedule timer")?;
        Ok(App {
            syncer,
            schedule_timer,
            tcp_slots,
            tcp_timeouts,
            dot,
            doh,
            encrypted,
            hitlog,
            refresher,
            refresher_control,
            udp,
            tcp,
            pipeline,
            live,
            resolver,
            reload_stats,
            reload_trigger,
            reload_thread,
            admin,
            admin_state,
            admin_tls,
        })
    }

    /// The bound UDP addresses, each once.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect();
        // Sockets sharing a port (SO_REUSEPORT) are adjacent: report the address once.
        addrs.dedup();
        addrs
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The bound DoT addresses.
    pub fn dot_addrs(&self) -> Vec<SocketAddr> {
        self.dot
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The bound DoH addresses.
    pub fn doh_addrs(&self) -> Vec<SocketAddr> {
        self.doh
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The bound admin address, if `[admin] listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The `/metrics` body as it would be served now.
    pub fn render_metrics(&self) -> String {
        self.admin_state.render_metrics()
    }

    /// The live state (the policy now, the config it came from).
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live)
    }

    /// The resolver (cache counters, for tests and metrics).
    pub fn resolver(&self) -> Arc<Resolver> {
        Arc::clone(&self.resolver)
    }

    /// The hit log's sender: its counters, and `flush` to wait until recorded hits are on
    /// disk (tests and benchmarks).
    pub fn hits(&self) -> crate::hitlog::HitSender {
        self.hitlog.sender()
    }

    /// Reload counters.
    pub fn reload_stats(&self) -> Arc<ReloadStats> {
        Arc::clone(&self.reload_stats)
    }

    /// Sends that trigger reloads (`SIGHUP`) and stop the reload thread.
    pub fn reload_trigger(&self) -> mpsc::Sender<Trigger> {
        self.reload_trigger.clone()
    }

    /// Serves until `shutdown` turns true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let in_flight = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for socket in self.udp {
            tasks.spawn(udp::serve(
                socket,
                Arc::clone(&self.pipeline),
                Arc::clone(&in_flight),
                shutdown.clone(),
            ));
        }
        for listener in self.tcp {
            tasks.spawn(tcp::serve(
                listener,
                Arc::clone(&self.pipeline),
                Arc::clone(&self.tcp_slots),
                self.tcp_timeouts,
                shutdown.clone(),
            ));
        }
        if let Some((shared, dot_acceptor, doh_acceptor)) = &self.encrypted {
            for listener in self.dot {
                tasks.spawn(dot::serve(
                    listener,
                    dot_acceptor.clone(),
                    Arc::clone(shared),
                    shutdown.clone(),
                ));
            }
            for listener in self.doh {
                tasks.spawn(doh::serve(
                    listener,
                    doh_acceptor.clone(),
                    Arc::clone(shared),
                    shutdown.clone(),
                ));
            }
        }
        let admin = self.admin.map(|listener| {
            tokio::spawn(admin::serve(
                listener,
                self.admin_state,
                self.admin_tls,
                shutdown.clone(),
            ))
        });
        while tasks.join_next().await.is_some() {}
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        // Front ends stopped accepting; wait for the queries they started.
        let all = MAX_UDP_IN_FLIGHT as u32;
        let _ = tokio::time::timeout(DRAIN, in_flight.acquire_many(all)).await;
        let hitlog = self.hitlog;
        let _ = tokio::task::spawn_blocking(move || hitlog.stop()).await;
        let _ = self.refresher_control.send(subscriptions::Refresher::Stop);
        let refresher = self.refresher;
        let _ = tokio::task::spawn_blocking(move || refresher.join()).await;
        let schedule_timer = self.schedule_timer;
        let _ = tokio::task::spawn_blocking(move || schedule_timer.stop()).await;
        if let Some(syncer) = self.syncer {
            let _ = tokio::task::spawn_blocking(move || syncer.stop()).await;
        }
        let _ = self.reload_trigger.send(Trigger::Stop);
        let reload_thread = self.reload_thread;
        let _ = tokio::task::spawn_blocking(move || reload_thread.join()).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A listener that cannot be bound, said so that an admin knows what to do: a port below 1024
/// without the capability to bind it, or a port another program holds.
fn bind_error(what: &str, addr: SocketAddr, err: std::io::Error) -> anyhow::Error {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            let exe = std::env::current_exe()
                .map_or_else(|_| "schooldns".to_string(), |p| p.display().to_string());
            anyhow::anyhow!(
                "binding {what} {addr}: permission denied. Ports below 1024 need the \
                 CAP_NET_BIND_SERVICE capability, not root: run schooldns as its systemd service \
                 (the Debian package's unit grants it with AmbientCapabilities), or grant it to \
                 this binary once with `sudo setcap cap_net_bind_service=+ep {exe}`, or listen \
                 on a port of 1024 or more"
            )
        }
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "binding {what} {addr}: the address is already in use by another program \
             (`ss -lntup 'sport = :{}'` shows which; on many systems systemd-resolved holds \
             127.0.0.53:53: listen on the machine's own addresses instead)",
            addr.port()
        ),
        _ => anyhow::Error::new(err).context(format!("binding {what} {addr}")),
    }
}
