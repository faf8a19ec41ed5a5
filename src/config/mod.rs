//! The configuration file (`config/schooldns.toml`) as admins write it.
//!
//! These are the raw serde structs: every key is documented here and in `config/README.md`,
//! unknown keys are errors, and defaults live in one `Default` impl per table. Values that
//! later checks may reject (category and profile references, networks, list paths) are kept
//! `Spanned` so the error can point at their line. Turning this into something the query path
//! can use is `policy::compile`'s job; nothing on the query path reads these structs.

mod checks;
mod error;
pub mod origin;
pub mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use error::{ConfigError, MACHINE_TABLES, SourceText, Tail};

/// Where `schooldns` looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/schooldns.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners.
    #[serde(default)]
    pub server: ServerConfig,
    /// Upstream resolvers.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Blocklist categories by name.
    #[serde(default)]
    pub categories: BTreeMap<String, CategoryConfig>,
    /// Age profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Schools and the networks that identify them.
    #[serde(default)]
    pub schools: Vec<SchoolConfig>,
    /// What happens to clients outside every school network.
    #[serde(default)]
    pub defaults: DefaultsConfig,
    /// The policy-hit log.
    #[serde(default)]
    pub hitlog: HitlogConfig,
    /// The answer cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Live reload.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// The admin HTTP listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Downloaded lists.
    #[serde(default)]
    pub subscriptions: SubscriptionsConfig,
    /// Certificate and name of the encrypted listeners (DoT, DoH).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Home devices and families identified by token.
    #[serde(default)]
    pub devices: DevicesConfig,
    /// The web console: its people.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The services catalogue (`block_services`, `allow_services` name its services).
    #[serde(default)]
    pub services: ServicesConfig,
    /// Named weekly time windows that `when` rules switch on (`[schedules.lessons]`).
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleConfig>,
    /// Exam days and holidays.
    #[serde(default)]
    pub calendar: CalendarConfig,
    /// One config origin for several resolvers (in each instance's own file).
    #[serde(default)]
    pub sync: SyncConfig,
}

/// `[sync]`: where this instance pulls the district's config, lists, devices, users and
/// exceptions from. With `origin` set, the file given to `--config` holds only this machine's
/// tables (`[server]`, `[admin]`, `[hitlog]`, `[tls]`, `[sync]`) and the rest comes from
/// `config` inside the `checkout` folder, kept up to date from the origin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// A git repository (URL or path) or an HTTPS URL of a `.tar.gz` bundle.
    #[serde(default)]
    pub origin: Option<Spanned<String>>,
    /// Seconds between pulls.
    #[serde(default = "default_sync_interval")]
    pub interval_secs: u64,
    /// Git branch (default: the origin's default branch).
    #[serde(default)]
    pub branch: Option<String>,
    /// Absolute path of the folder holding this instance's copy of the origin.
    #[serde(default)]
    pub checkout: Option<Spanned<PathBuf>>,
    /// The district config's path inside the origin.
    #[serde(default = "default_origin_config")]
    pub config: PathBuf,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            origin: None,
            interval_secs: default_sync_interval(),
            branch: None,
            checkout: None,
            config: default_origin_config(),
        }
    }
}

fn default_sync_interval() -> u64 {
    60
}

fn default_origin_config() -> PathBuf {
    PathBuf::from("schooldns.toml")
}

/// `[services]`: where the catalogue of named services is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesConfig {
    /// The catalogue (`blocklists/services/catalog.toml` in the shipped config): each service's
    /// id, names, description and list file. Absent: no services can be named.
    #[serde(default)]
    pub catalog: Option<PathBuf>,
}

/// `[schedules.NAME]`: weekly windows, read in the time zone of whoever the rule applies to
/// (the school's or device's `timezone`, else `[hitlog] timezone`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Days it applies on: `mon` … `sun`.
    pub days: Vec<Spanned<String>>,
    /// Windows `HH:MM-HH:MM`; one that ends before it starts runs past midnight into the next
    /// day (`22:00-06:00`), `24:00` is the end of the day.
    pub times: Vec<Spanned<String>>,
    /// Shown to admins.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[calendar]`: exam days and holidays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// The calendar file (`[[exams]]`, `[[holidays]]`, `[[imports]]` of iCal files or URLs).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// A `when` rule: while its schedule is active, it switches profile and/or adds blocks and
/// allows (`[[profiles.NAME.when]]`, `[[schools.when]]`, `[[devices.when]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenConfig {
    /// The schedule (`[schedules.NAME]`) that switches the rule on.
    pub schedule: Spanned<String>,
    /// Another profile to apply while the schedule is active.
    #[serde(default)]
    pub profile: Option<Spanned<String>>,
    /// Categories blocked while active.
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    /// Categories allowed while active (allow wins over every block).
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Services (catalogue ids) blocked while active.
    #[serde(default)]
    pub block_services: Vec<Spanned<String>>,
    /// Services allowed while active.
    #[serde(default)]
    pub allow_services: Vec<Spanned<String>>,
}

/// `[console]`: the web console for the district, schools and police.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The users file (`schooldns users add|passwd|disable|list` edit it): who may sign in,
    /// with which role, and their Argon2id password hashes.
    #[serde(default)]
    pub users: Option<PathBuf>,
    /// The exceptions file the console writes (allow or block one name for one school or the
    /// whole district); the policy compiles those in force. Absent: no exceptions from a file.
    #[serde(default)]
    pub exceptions: Option<PathBuf>,
    /// The unblock requests file the console writes (schools ask, the district decides).
    #[serde(default)]
    pub requests: Option<PathBuf>,
    /// The service toggles file the console writes: services switched off or kept working per
    /// profile and per school, on top of this file's own. Absent: the console shows services
    /// but cannot change them.
    #[serde(default)]
    pub service_toggles: Option<PathBuf>,
}

impl Config {
    /// The configured school ids, in config order.
    pub fn school_ids(&self) -> Vec<&str> {
        self.schools
            .iter()
            .map(|s| s.id.get_ref().as_str())
            .collect()
    }

    /// Whether `id` is a configured school.
    pub fn has_school(&self, id: &str) -> bool {
        self.schools.iter().any(|s| s.id.get_ref() == id)
    }

    /// Files besides the config and the lists whose change calls for a reload: the devices,
    /// users and exceptions files and the TLS certificate and key.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.devices.file.iter().cloned().collect();
        files.extend(self.console.users.iter().cloned());
        files.extend(self.console.exceptions.iter().cloned());
        files.extend(self.calendar.file.iter().cloned());
        files.extend(self.console.service_toggles.iter().cloned());
        files.extend(self.services.catalog.iter().cloned());
        files.extend(self.tls.cert.iter().cloned());
        files.extend(self.tls.key.iter().cloned());
        files
    }
}

/// `[tls]`: what the DoT and DoH listeners present, and how many connections they hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. It must cover `hostname` and `*.hostname` (DoT
    /// clients send `<token>.<hostname>`). Reloaded when the file changes.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The public name of the service: DoT clients use `<token>.<hostname>`, DoH clients
    /// `https://<hostname>/dns-query/<token>`.
    #[serde(default)]
    pub hostname: Option<Spanned<String>>,
    /// Most DoT and DoH connections open at once (together); beyond it new connections wait.
    #[serde(default = "default_tls_connections")]
    pub max_connections: usize,
    /// A DoT or DoH connection that sends nothing for this many seconds is closed.
    #[serde(default = "default_tls_idle")]
    pub idle_timeout_secs: u64,
}

fn default_tls_connections() -> usize {
    20_000
}

fn default_tls_idle() -> u64 {
    60
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            cert: None,
            key: None,
            hostname: None,
            max_connections: default_tls_connections(),
            idle_timeout_secs: default_tls_idle(),
        }
    }
}

/// `[devices]`: home devices and families, identified by the token their DoT server name or
/// DoH path carries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// The devices file (`config/devices.toml`), reloaded live like the lists. Absent: no
    /// device has a token.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Profile for encrypted queries with a missing, unknown or revoked token. Absent (the
    /// default): they are refused; they never go unfiltered.
    #[serde(default)]
    pub default_profile: Option<Spanned<String>>,
    /// Public addresses of the service, shown on the setup page where a platform needs one
    /// (Windows 11 asks for the server's IP address beside the DoH template).
    #[serde(default)]
    pub server_addresses: Vec<std::net::IpAddr>,
    /// Who parents ask for help, shown on every setup page (a phone number, an address).
    #[serde(default)]
    pub help: Option<String>,
}

/// `[subscriptions]`: how category `urls` are downloaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Folder holding the last good copy of each URL.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// Seconds between refreshes.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
    /// Longest a download may take, in seconds.
    #[serde(default = "default_download_timeout")]
    pub timeout_secs: u64,
}

fn default_cache_dir() -> PathBuf {
    PathBuf::from("data/lists")
}

fn default_refresh() -> u64 {
    6 * 3600
}

fn default_download_timeout() -> u64 {
    60
}

impl Default for SubscriptionsConfig {
    fn default() -> SubscriptionsConfig {
        SubscriptionsConfig {
            cache_dir: default_cache_dir(),
            refresh_secs: default_refresh(),
            timeout_secs: default_download_timeout(),
        }
    }
}

/// `[admin]`: operations endpoints and who may read the hit log through them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `ip:port` for `/metrics`, `/health` and the `/api/*` read API; absent: no admin
    /// listener.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// `[[admin.tokens]]`: bearer tokens for `/api/*`, by hash, each with a role.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Most admin connections open at once; beyond it, the one longest without progress is
    /// closed to admit the newcomer.
    #[serde(default = "default_admin_connections")]
    pub max_connections: usize,
    /// Most admin connections from one address (IPv6: one /64) at once.
    #[serde(default = "default_admin_per_address")]
    pub max_connections_per_address: usize,
    /// Serve the admin listener (the console, `/metrics`, the API) over HTTPS, with `cert` and
    /// `key` or else the `[tls]` certificate. Session cookies are then `Secure`.
    #[serde(default)]
    pub tls: bool,
    /// PEM certificate chain for the admin listener (default: `[tls] cert`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (default: `[tls] key`).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl AdminConfig {
    /// Why serving this admin listener is unsafe, if it is: a listener other than loopback
    /// without TLS sends passwords and session cookies in the clear.
    pub fn plaintext_warning(&self) -> Option<String> {
        let addr = self.listen?;
        (!self.tls && !addr.ip().is_loopback()).then(|| {
            format!(
                "[admin] listen = {addr} is not on loopback and [admin] tls is off: console \
                 passwords and session cookies would cross the network in the clear; set \
                 [admin] tls = true (with [tls] or [admin] cert and key)"
            )
        })
    }
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            listen: None,
            tokens: Vec::new(),
            max_connections: default_admin_connections(),
            max_connections_per_address: default_admin_per_address(),
            tls: false,
            cert: None,
            key: None,
        }
    }
}

fn default_admin_connections() -> usize {
    256
}

fn default_admin_per_address() -> usize {
    32
}

/// One `[[admin.tokens]]` entry. The token itself is never written in the config: only its
/// SHA-256, so a leaked config grants nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Hex SHA-256 of the token (64 hex digits).
    pub sha256: Spanned<String>,
    /// `district` (every record) or `school:<id>` (that school's records only).
    pub role: Spanned<String>,
}

/// `[server]`: where plain DNS is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// UDP listen addresses.
    #[serde(default)]
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    #[serde(default)]
    pub tcp: Vec<SocketAddr>,
    /// DNS-over-TLS listen addresses (RFC 7858; 853 in production). Needs `[tls]`.
    #[serde(default)]
    pub dot: Vec<SocketAddr>,
    /// DNS-over-HTTPS listen addresses (RFC 8484; 443 in production), which also serve the
    /// setup pages. Needs `[tls]`.
    #[serde(default)]
    pub doh: Vec<SocketAddr>,
    /// Most plain-DNS TCP connections open at once; when full, the one longest without a
    /// completed query is closed to admit a newcomer.
    #[serde(default = "default_tcp_connections")]
    pub max_tcp_connections: usize,
    /// Most TCP, DoT or DoH connections from one address (IPv6: one /64) at once, per
    /// listener kind, so one client cannot hold every slot.
    #[serde(default = "default_per_address")]
    pub max_connections_per_address: usize,
    /// A plain-DNS TCP connection with no completed query for this long is closed.
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout_secs: u64,
    /// A client that does not take an answer (TCP, DoT, DoH, admin) within this many seconds
    /// is disconnected.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_secs: u64,
    /// Refusals answered per second to one source network outside every school (a /24, or
    /// a /56 for IPv6); beyond it, queries from there are dropped unanswered, so schooldns
    /// cannot be used to reflect traffic at a forged address.
    #[serde(default = "default_refused_per_second")]
    pub refused_per_second: u32,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        let loopback: SocketAddr = ([127, 0, 0, 1], 5353).into();
        ServerConfig {
            udp: vec![loopback],
            tcp: vec![loopback],
            dot: Vec::new(),
            doh: Vec::new(),
            max_tcp_connections: default_tcp_connections(),
            max_connections_per_address: default_per_address(),
            tcp_idle_timeout_secs: default_tcp_idle(),
            write_timeout_secs: default_write_timeout(),
            refused_per_second: default_refused_per_second(),
        }
    }
}

fn default_tcp_connections() -> usize {
    1024
}

fn default_per_address() -> usize {
    64
}

fn default_tcp_idle() -> u64 {
    10
}

fn default_write_timeout() -> u64 {
    10
}

fn default_refused_per_second() -> u32 {
    20
}

/// `[upstream]`: the resolvers allowed queries are forwarded to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Each upstream, tried in order: `ip:port`, `tls://ip@name` or `https://ip@name/path`
    /// (see [`upstream::UpstreamServer`]).
    #[serde(default)]
    pub servers: Vec<upstream::UpstreamServer>,
    /// PEM file of certificate authorities trusted for DoT and DoH upstreams, besides the
    /// Mozilla roots built in (a district's own resolver with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time a client may wait for an upstream answer before it gets SERVFAIL, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long a failed upstream is skipped before it is tried again, in seconds.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_retry_after() -> u64 {
    30
}

impl Default for UpstreamConfig {
    fn default() -> UpstreamConfig {
        UpstreamConfig {
            servers: Vec::new(),
            ca_file: None,
            timeout_ms: default_timeout_ms(),
            retry_after_secs: default_retry_after(),
        }
    }
}

/// `[cache]`: answers kept to serve repeated questions without going upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most answers kept; the oldest are evicted first.
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
    /// Longest an expired answer may be served (with TTL 30) while every upstream fails, in
    /// seconds (RFC 8767); 0 disables serve-stale.
    #[serde(default = "default_stale_max")]
    pub stale_max: u64,
}

fn default_cache_entries() -> usize {
    100_000
}

fn default_stale_max() -> u64 {
    86_400
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_entries: default_cache_entries(),
            stale_max: default_stale_max(),
        }
    }
}

/// `[reload]`: how file changes become a new policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Quiet time after the last file event before reloading, in milliseconds.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
    /// A category whose entry count falls by more than this fraction is refused (a list caught
    /// half-written), and the old policy keeps serving.
    #[serde(default = "default_max_shrink")]
    pub max_shrink: f64,
}

fn default_debounce_ms() -> u64 {
    500
}

fn default_max_shrink() -> f64 {
    0.5
}

impl Default for ReloadConfig {
    fn default() -> ReloadConfig {
        ReloadConfig {
            debounce_ms: default_debounce_ms(),
            max_shrink: default_max_shrink(),
        }
    }
}

/// `[categories.NAME]`: one or more list sources under one name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    /// List files (any supported format, optionally `.gz`) or UT1 category folders.
    #[serde(default)]
    pub lists: Vec<Spanned<String>>,
    /// Lists to download (http or https), kept in `[subscriptions] cache_dir` and refreshed
    /// every `[subscriptions] refresh_secs`.
    #[serde(default)]
    pub urls: Vec<Spanned<String>>,
    /// Shown to admins and reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// A school's allow exception never unblocks this category's names; only a district-wide
    /// exception can (the shipped config locks malware and phishing).
    #[serde(default)]
    pub locked: bool,
}

/// How strictly search engines are forced into safe mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SafeSearchLevel {
    /// Google, Bing and DuckDuckGo safe search, YouTube strict restricted mode.
    #[default]
    Strict,
    /// As strict, but YouTube's moderate restricted mode.
    Moderate,
    /// No rewriting.
    Off,
}

/// `[profiles.NAME]`: what one age group may reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Categories blocked for this profile.
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    /// Categories never blocked for this profile; an allowed name wins over every block.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Safe-search enforcement.
    #[serde(default)]
    pub safe_search: SafeSearchLevel,
    /// `"nxdomain"`, `"null"` or the IPv4/IPv6 address of a block page.
    #[serde(default = "default_answer")]
    pub answer: Spanned<String>,
    /// Answer NXDOMAIN for the names browsers and phones use to switch filtering off
    /// (Firefox's DoH canary, iCloud Private Relay).
    #[serde(default = "default_true")]
    pub bypass_protection: bool,
    /// Shown to admins.
    #[serde(default)]
    pub description: Option<String>,
    /// Block every name that no allowed category or service lists (exam days, bedtime).
    /// These blocks are counted in the metrics but not recorded in the hit log: every name a
    /// device asks for would otherwise be kept, which is a browsing history.
    #[serde(default)]
    pub block_unlisted: bool,
    /// Services (catalogue ids) blocked for this profile.
    #[serde(default)]
    pub block_services: Vec<Spanned<String>>,
    /// Services never blocked for this profile (allow wins).
    #[serde(default)]
    pub allow_services: Vec<Spanned<String>>,
    /// Rules in time: what changes while a schedule is active.
    #[serde(default)]
    pub when: Vec<WhenConfig>,
}

fn default_answer() -> Spanned<String> {
    Spanned::new(0..0, "nxdomain".to_string())
}

fn default_true() -> bool {
    true
}

/// `[[schools]]`: one school and the networks its devices query from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchoolConfig {
    /// Stable identifier used in hit records and reviewer roles.
    pub id: Spanned<String>,
    /// Display name (UTF-8, e.g. Vietnamese).
    pub name: String,
    /// CIDR networks; the longest matching prefix over all schools wins.
    pub networks: Vec<Spanned<String>>,
    /// Profile for clients in these networks.
    pub profile: Spanned<String>,
    /// More specific networks of this school with another profile (`"10.1.9.0/24" = "staff"`),
    /// or with services of their own
    /// (`"10.1.9.0/24" = { profile = "staff", block_services = ["tiktok"] }`).
    #[serde(default)]
    pub subnets: BTreeMap<String, SubnetConfig>,
    /// Lets a network cover every address (`0.0.0.0/0`, `::/0`). Off by default: such a
    /// network makes schooldns an open resolver for the whole internet.
    #[serde(default)]
    pub allow_any_network: bool,
    /// Names (and their subdomains) this school always lets through, above its profile's
    /// lists (never above a `locked` category).
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Names (and their subdomains) this school always blocks, whatever its lists allow.
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    /// Services (catalogue ids) blocked at this school, whatever its profiles say.
    #[serde(default)]
    pub block_services: Vec<Spanned<String>>,
    /// Services allowed at this school (allow wins).
    #[serde(default)]
    pub allow_services: Vec<Spanned<String>>,
    /// The school's time zone for schedules and the calendar (IANA name); default
    /// `[hitlog] timezone`.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// The school's own rules in time (its timetable), on top of its profiles'.
    #[serde(default)]
    pub when: Vec<WhenConfig>,
}

/// A subnet's value: a profile name, or a table with the profile and the subnet's services.
/// (Kept whole under one span: an untagged enum cannot carry spans inside it.)
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct SubnetConfig(Spanned<SubnetValue>);

/// The two spellings of a subnet's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SubnetValue {
    /// `"10.1.9.0/24" = "staff"`.
    Profile(String),
    /// `"10.1.9.0/24" = { profile = "staff", block_services = ["tiktok"] }`.
    Rules {
        /// The subnet's profile.
        profile: String,
        /// Services blocked on this subnet.
        #[serde(default)]
        block_services: Vec<String>,
        /// Services allowed on this subnet.
        #[serde(default)]
        allow_services: Vec<String>,
    },
}

impl SubnetConfig {
    /// The subnet's profile name, spanning the value.
    pub fn profile(&self) -> Spanned<String> {
        let profile = match self.0.get_ref() {
            SubnetValue::Profile(p) | SubnetValue::Rules { profile: p, .. } => p.clone(),
        };
        Spanned::new(self.0.span(), profile)
    }

    /// Its blocked and allowed services, each spanning the value.
    pub fn services(&self) -> (Vec<Spanned<String>>, Vec<Spanned<String>>) {
        let span = |names: &[String]| {
            names
                .iter()
                .map(|n| Spanned::new(self.0.span(), n.clone()))
                .collect()
        };
        match self.0.get_ref() {
            SubnetValue::Profile(_) => (Vec::new(), Vec::new()),
            SubnetValue::Rules {
                block_services,
                allow_services,
                ..
            } => (span(block_services), span(allow_services)),
        }
    }
}

/// `[defaults]`: clients outside every school network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsConfig {
    /// Profile for unknown networks. Absent (the default): they are refused, so schooldns is
    /// never an open resolver.
    #[serde(default)]
    pub profile: Option<Spanned<String>>,
}

/// `[hitlog]`: the policy-hit log (blocks only; allowed queries are never recorded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HitlogConfig {
    /// Record hits at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// SQLite file.
    #[serde(default = "default_hitlog_path")]
    pub path: PathBuf,
    /// How much of the client address is kept.
    #[serde(default)]
    pub client_address: ClientAddress,
    /// Days a record is kept before it is deleted.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Days the audit log (who read, exported or changed what) is kept.
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// Per-category overrides of `retention_days` (e.g. `malware = 365`, `ads = 7`).
    #[serde(default)]
    pub category_retention_days: BTreeMap<String, Spanned<u32>>,
    /// Repeats of the same client, name and decision within this many seconds of a record's
    /// first hit update that record's `count` and `last_seen` instead of adding rows.
    #[serde(default = "default_repeat_window")]
    pub repeat_window_secs: u64,
    /// Hits buffered between each query thread and the writer (one ring per thread); beyond
    /// it hits are dropped and counted, never waited for.
    #[serde(default = "default_hitlog_queue")]
    pub queue: usize,
    /// Also write every hit as one JSON line: `"stdout"` or a file path. Absent: off.
    #[serde(default)]
    pub json: Option<String>,
    /// IANA time zone for local-time columns and summary days (e.g. `Asia/Ho_Chi_Minh`);
    /// absent: the system's.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// Where records are kept for readers: `sqlite` (the file at `path`, the default) or
    /// `postgres` (the file becomes this instance's spool, shipped to `url`).
    #[serde(default)]
    pub backend: HitlogBackend,
    /// PostgreSQL connection URL (`postgres://schooldns@db.example:5432/schooldns`), without
    /// the password.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// File holding the PostgreSQL password (one line), readable by the service only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Most megabytes of unshipped records the spool may hold while PostgreSQL cannot take
    /// them; past it new hits are dropped, counted and warned about.
    #[serde(default = "default_spool_max_mb")]
    pub spool_max_mb: u64,
    /// This resolver's name in the shared hit store and the instances view; absent: the
    /// host name.
    #[serde(default)]
    pub instance: Option<Spanned<String>>,
}

/// `[hitlog] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitlogBackend {
    /// The SQLite file at `path`.
    #[default]
    Sqlite,
    /// PostgreSQL at `url`, fed from the SQLite spool at `path`.
    Postgres,
}

impl HitlogConfig {
    /// This instance's id: `[hitlog] instance`, else the host name.
    pub fn instance_id(&self) -> String {
        match &self.instance {
            Some(id) => id.get_ref().clone(),
            None => host_name(),
        }
    }
}

/// The machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_string())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn default_spool_max_mb() -> u64 {
    1024
}

/// `[hitlog] client_address`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAddress {
    /// The address as seen.
    #[default]
    Full,
    /// IPv4 /24, IPv6 /56.
    Masked,
    /// Not stored.
    None,
}

fn default_hitlog_path() -> PathBuf {
    PathBuf::from("data/hits.sqlite")
}

fn default_retention_days() -> u32 {
    90
}

fn default_repeat_window() -> u64 {
    60
}

/// 131,072 hits: 1.3 s of 100,000 hits/s from one thread, and 22 MB per ring at 168 bytes a
/// hit (touched as hits flow). In side-by-side runs of `benches/hitlog.sh`'s repeat load at
/// 110,000 blocked queries/s, with the writer sharing a core with dnsperf, 65,536 dropped
/// 11,490–20,627 hits in each of 3 runs and 131,072 none.
fn default_audit_retention_days() -> u32 {
    crate::hitlog::audit::DEFAULT_RETENTION_DAYS
}

fn default_hitlog_queue() -> usize {
    131_072
}

impl Default for HitlogConfig {
    fn default() -> HitlogConfig {
        HitlogConfig {
            enabled: true,
            path: default_hitlog_path(),
            client_address: ClientAddress::default(),
            retention_days: default_retention_days(),
            audit_retention_days: default_audit_retention_days(),
            category_retention_days: BTreeMap::new(),
            repeat_window_secs: default_repeat_window(),
            queue: default_hitlog_queue(),
            json: None,
            timezone: None,
            backend: HitlogBackend::default(),
            url: None,
            password_file: None,
            spool_max_mb: default_spool_max_mb(),
            instance: None,
        }
    }
}

/// A parsed config together with its text, so later checks can point at lines.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed values.
    pub config: Config,
    /// The file it came from.
    pub source: SourceText,
}

impl LoadedConfig {
    /// Reads and parses a config file. Syntax errors, unknown keys and wrongly typed values
    /// come back with file, line and key.
    pub fn read(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::unreadable(path, "config", &e))?;
        match origin::overlay(path, &text)? {
            Some(source) => LoadedConfig::parse_source(source),
            None => LoadedConfig::parse(path, text),
        }
    }

    /// Parses config text that claims to come from `path`.
    pub fn parse(path: &Path, text: String) -> Result<LoadedConfig, ConfigError> {
        LoadedConfig::parse_source(SourceText::new(path, text))
    }

    fn parse_source(source: SourceText) -> Result<LoadedConfig, ConfigError> {
        let config = toml::from_str(&source.text).map_err(|e| source.from_toml(&e))?;
        let loaded = LoadedConfig { config, source };
        checks::check(&loaded)?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/schooldns.toml");

    #[test]
    fn shipped_config_parses() {
        let loaded = LoadedConfig::parse(Path::new("config/schooldns.toml"), SHIPPED.into())
            .expect("shipped config parses");
        assert!(loaded.config.profiles.len() >= 4);
        assert!(!loaded.config.schools.is_empty());
    }

    /// Adds a bogus key to every table of the shipped config in turn: each must be rejected
    /// with that key's name and line.
    #[test]
    fn unknown_keys_are_rejected_in_every_table() {
        let lines: Vec<&str> = SHIPPED.lines().collect();
        let mut tables = 0;
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with('[') {
                continue;
            }
            tables += 1;
            let mut edited = lines.clone();
            edited.insert(i + 1, "bogus_key = 1");
            let text = edited.join("\n");
            let err = LoadedConfig::parse(Path::new("c.toml"), text).unwrap_err();
            assert_eq!(err.line, i + 2, "{err}");
            assert!(err.key.ends_with("bogus_key"), "{err}");
            // Tables keyed by category name reject an unknown name instead.
            assert!(
                err.message.contains("unknown field") || err.message.contains("no category"),
                "{err}"
            );
        }
        assert!(tables >= 10);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = LoadedConfig::parse(
            Path::new("c.toml"),
            "[server]\nudp = [\"not an address\"]\n".into(),
        )
        .unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (2, "server.udp"), "{err}");
    }
}
