//! Config + list files → [`Policy`]. Runs off the hot path (a CLI command, a reload thread).
//!
//! Every reference in the config is resolved here and every mistake becomes a [`ConfigError`]
//! naming file, line and key: unknown categories or profiles, a category both blocked and
//! allowed, bad networks, a network claimed twice, unreadable list files. Bad lines inside a
//! list are not errors; they are counted in the list's report.
//!
//! A [`Compiler`] remembers the categories of its last policy. A category whose files all have
//! the same size, modification time and inode as before is shared with the new policy instead
//! of being parsed again, so a reload after editing one small list costs that list's category,
//! in time and in memory.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;

use super::bloom::NameFilter;
use super::decision::BlockAnswer;
use super::devices::{Device, Devices};
use super::matcher::{DomainTableBuilder, MAX_FILES};
use super::networks::{NetworkTarget, Networks};
use super::profiles::{ExceptionProbe, Probe, Profile, Role};
use super::{Category, CompiledCategory, CompiledFile, Policy, School};
use crate::config::{ConfigError, LoadedConfig};
use crate::lists::{self, ut1};

/// Compilation fails only for configuration problems (a missing list file is one).
pub type CompileError = ConfigError;

/// What identifies a file's content cheaply: size, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

/// Compiles policies, reusing unchanged categories from the previous one.
#[derive(Debug, Default)]
pub struct Compiler {
    previous: HashMap<Vec<(PathBuf, FileStamp)>, Arc<CompiledCategory>>,
}

/// Compiles a config from scratch.
pub fn compile(loaded: &LoadedConfig) -> Result<Policy, CompileError> {
    Compiler::default().compile(loaded)
}

/// Reads a category's files into one table.
pub fn compile_category(
    files: &[(PathBuf, FileStamp)],
) -> Result<CompiledCategory, lists::ListError> {
    // At most one rule per 8 bytes of text (`a.b.cc\n`; gzip compresses lists about 4:1).
    // Capacity that is never written is never resident, so over-estimating costs address space,
    // not memory, while growing would move the vector away from its huge-page advice.
    let estimate: u64 = files
        .iter()
        .map(|(path, stamp)| {
            let gz = path.extension().is_some_and(|e| e == "gz");
            if gz { stamp.len / 2 } else { stamp.len / 8 }
        })
        .sum();
    let mut builder = DomainTableBuilder::with_capacity(estimate.min(100_000_000) as usize);
    let mut compiled = Vec::with_capacity(files.len());
    for (index, (path, stamp)) in files.iter().enumerate() {
        let file = index as u16;
        let report = lists::read_list(path, None, &mut |rule| {
            builder.insert(rule.name, file, rule.line, rule.action, rule.scope)
        })?;
        compiled.push(CompiledFile {
            path: path.clone(),
            report,
            stamp: *stamp,
        });
    }
    Ok(CompiledCategory {
        files: compiled,
        table: builder.build(),
    })
}

impl Compiler {
    /// Compiles `loaded`; on success, remembers its categories for the next call.
    pub fn compile(&mut self, loaded: &LoadedConfig) -> Result<Policy, CompileError> {
        let config = &loaded.config;
        let source = &loaded.source;

        let mut categories = Vec::new();
        let mut kept = HashMap::new();
        for (name, cat) in &config.categories {
            let key = format!("categories.{name}.lists");
            let mut url_rules = 0;
            let mut files: Vec<(PathBuf, FileStamp)> = Vec::new();
            for list in &cat.lists {
                let path = PathBuf::from(list.get_ref());
                let paths = if path.is_dir() {
                    url_rules += ut1::url_rule_count(&path);
                    ut1::domain_files(&path).map_err(|e| {
                        source.error_at(list.span(), &key, format!("{}: {e}", path.display()))
                    })?
                } else {
                    vec![path]
                };
                for path in paths {
                    let stamp = FileStamp::of(&path).map_err(|e| {
                        source.error_at(
                            list.span(),
                            &key,
                            format!("cannot read list {}: {e}", path.display()),
                        )
                    })?;
                    if !files.iter().any(|(p, _)| p == &path) {
                        files.push((path, stamp));
                    }
                }
            }
            for url in &cat.urls {
                let scheme_ok = ["http://", "https://"]
                    .iter()
                    .any(|s| url.get_ref().starts_with(s));
                if !scheme_ok {
                    return Err(source.error_at(
                        url.span(),
                        &format!("categories.{name}.urls"),
                        format!("{:?} is not an http:// or https:// URL", url.get_ref()),
                    ));
                }
                // The last good download, if there is one yet; the refresher fetches the rest.
                let path = crate::subscriptions::cached_path(
                    &config.subscriptions.cache_dir,
                    url.get_ref(),
                );
                if let Ok(stamp) = FileStamp::of(&path) {
                    if !files.iter().any(|(p, _)| p == &path) {
                        files.push((path, stamp));
                    }
                } else {
                    tracing::warn!(category = %name, url = %url.get_ref(), "no downloaded copy of this subscription yet");
                }
            }
            if files.len() > MAX_FILES {
                return Err(source.error(&key, format!("more than {MAX_FILES} list files")));
            }
            let compiled = match self.previous.get(&files) {
                Some(previous) => Arc::clone(previous),
                None => {
                    let started = std::time::Instant::now();
                    let compiled = compile_category(&files).map_err(|e| {
                        let span = cat.lists.first().map_or(0..0, |l| l.span());
                        source.error_at(span, &key, e.to_string())
                    })?;
                    tracing::debug!(
                        category = %name,
                        names = compiled.table.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "compiled category"
                    );
                    Arc::new(compiled)
                }
            };
            kept.insert(files, Arc::clone(&compiled));
            categories.push(Category {
                name: name.clone(),
                description: cat.description.clone(),
                url_rules,
                locked: cat.locked,
                compiled,
            });
        }
        let configured = categories.len();
        let category_index =
            |name: &str| categories[..configured].iter().position(|c| c.name == name);

        let mut profiles = Vec::new();
        for (name, p) in &config.profiles {
            let resolve = |refs: &[toml::Spanned<String>], field: &str| {
                let key = format!("profiles.{name}.{field}");
                refs.iter()
                    .map(|r| {
                        category_index(r.get_ref())
                            .map(|i| i as u32)
                            .ok_or_else(|| {
                                let known: Vec<&str> =
                                    categories.iter().map(|c| c.name.as_str()).collect();
                                source.error_at(
                                    r.span(),
                                    &key,
                                    format!(
                                        "unknown category {:?} (known: {})",
                                        r.get_ref(),
                                        known.join(", ")
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<u32>, _>>()
            };
            let block = resolve(&p.block, "block")?;
            let allow = resolve(&p.allow, "allow")?;
            if let Some(both) = p.block.iter().find(|b| p.allow.contains(b)) {
                return Err(source.error_at(
                    both.span(),
                    &format!("profiles.{name}.block"),
                    format!("category {:?} is both blocked and allowed", both.get_ref()),
                ));
            }
            let answer = parse_answer(p.answer.get_ref()).ok_or_else(|| {
                source.error_at(
                    p.answer.span(),
                    &format!("profiles.{name}.answer"),
                    format!(
                        "{:?} is not \"nxdomain\", \"null\" or an IP address",
                        p.answer.get_ref()
                    ),
                )
            })?;
            let mut probes = Vec::new();
            for (cats, role) in [(&allow, Role::Allow), (&block, Role::Block)] {
                for &category in cats {
                    let has_allow_rules = categories[category as usize]
                        .compiled
                        .table
                        .has_allow_rules();
                    probes.push(Probe {
                        category,
                        role,
                        has_allow_rules,
                    });
                }
            }
            profiles.push(Profile {
                name: name.clone(),
                description: p.description.clone(),
                block,
                allow,
                safe_search: p.safe_search,
                answer,
                bypass_protection: p.bypass_protection,
                probes,
                exceptions: Vec::new(),
            });
        }
        // Exceptions: one table for the district (every profile consults it) and one per
        // school that has any (its networks get copies of their profiles that consult it).
        let (exception_tables, exceptions_in_force) = compile_exceptions(loaded)?;
        let mut school_exceptions: HashMap<String, u32> = HashMap::new();
        for (scope, compiled) in exception_tables {
            let index = categories.len() as u32;
            let (name, description) = match &scope {
                None => (
                    EXCEPTIONS_CATEGORY.to_string(),
                    "District-wide exceptions".to_string(),
                ),
                Some(school) => (
                    format!("{EXCEPTIONS_CATEGORY}:{school}"),
                    format!("Exceptions of school {school}"),
                ),
            };
            categories.push(Category {
                name,
                description: Some(description),
                url_rules: 0,
                locked: false,
                compiled: Arc::new(compiled),
            });
            match scope {
                None => {
                    for profile in &mut profiles {
                        profile.exceptions.push(ExceptionProbe {
                            category: index,
                            district: true,
                        });
                    }
                }
                Some(school) => {
                    school_exceptions.insert(school, index);
                }
            }
        }
        // A school with its own exceptions gets its own copy of each profile it uses.
        let mut school_profiles: HashMap<(u32, u32), u32> = HashMap::new();
        let mut profile_for = |profiles: &mut Vec<Profile>, school: &str, profile: u32| -> u32 {
            let Some(&category) = school_exceptions.get(school) else {
                return profile;
            };
            *school_profiles
                .entry((category, profile))
                .or_insert_with(|| {
                    let mut copy = profiles[profile as usize].clone();
                    copy.exceptions.insert(
                        0,
                        ExceptionProbe {
                            category,
                            district: false,
                        },
                    );
                    profiles.push(copy);
                    profiles.len() as u32 - 1
                })
        };
        // The configured profiles, by name (schools' copies come after them).
        let profile_names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
        let profile_index = |r: &toml::Spanned<String>, key: &str| {
            profile_names
                .iter()
                .position(|p| p == r.get_ref())
                .map(|i| i as u32)
                .ok_or_else(|| {
                    let known: Vec<&str> = profile_names.iter().map(String::as_str).collect();
                    source.error_at(
                        r.span(),
                        key,
                        format!(
                            "unknown profile {:?} (known: {})",
                            r.get_ref(),
                            known.join(", ")
                        ),
                    )
                })
        };

        let mut schools: Vec<School> = Vec::new();
        let mut networks = Networks::default();
        for (i, s) in config.schools.iter().enumerate() {
            let prefix = format!("schools[{i}]");
            if let Some(other) = schools.iter().find(|o| &o.id == s.id.get_ref()) {
                return Err(source.error_at(
                    s.id.span(),
                    &format!("{prefix}.id"),
                    format!("school id {:?} is used twice", other.id),
                ));
            }
            if s.id.get_ref().trim().is_empty() {
                return Err(source.error_at(s.id.span(), &format!("{prefix}.id"), "empty id"));
            }
            let profile = profile_index(&s.profile, &format!("{prefix}.profile"))?;
            let profile = profile_for(&mut profiles, s.id.get_ref(), profile);
            let school_index = schools.len() as u32;
            let mut claimed = Vec::new();
            for net in &s.networks {
                let key = format!("{prefix}.networks");
                let parsed = parse_network(net.get_ref()).ok_or_else(|| {
                    source.error_at(
                        net.span(),
                        &key,
                        format!("{:?} is not a CIDR network", net.get_ref()),
                    )
                })?;
                if parsed.prefix_len() == 0 && !s.allow_any_network {
                    return Err(source.error_at(
                        net.span(),
                        &key,
                        format!(
                            "network {parsed} covers every address and would make schooldns an \
                             open resolver; set allow_any_network = true on this school if \
                             that is really meant"
                        ),
                    ));
                }
                warn_host_bits(source, net.span(), &key, net.get_ref(), parsed);
                let target = NetworkTarget {
                    school: school_index,
                    profile,
                };
                networks.insert(parsed, target).map_err(|existing| {
                    let owner = schools
                        .get(existing.school as usize)
                        .map_or(s.id.get_ref().as_str(), |o| o.id.as_str());
                    source.error_at(
                        net.span(),
                        &key,
                        format!("network {parsed} is already claimed by school {owner:?}"),
                    )
                })?;
                claimed.push((parsed, profile));
            }
            for (cidr, sub_profile) in &s.subnets {
                let key = format!("{prefix}.subnets");
                let parsed = parse_network(cidr).ok_or_else(|| {
                    source.error_at(
                        sub_profile.span(),
                        &key,
                        format!("{cidr:?} is not a CIDR network"),
                    )
                })?;
                warn_host_bits(source, sub_profile.span(), &key, cidr, parsed);
                if !claimed.iter().any(|(n, _)| n.contains(&parsed)) {
                    return Err(source.error_at(
                        sub_profile.span(),
                        &key,
                        format!("subnet {parsed} is not inside any of this school's networks"),
                    ));
                }
                let profile = profile_index(sub_profile, &key)?;
                let profile = profile_for(&mut profiles, s.id.get_ref(), profile);
                networks
                    .insert(
                        parsed,
                        NetworkTarget {
                            school: school_index,
                            profile,
                        },
                    )
                    .map_err(|_| {
                        source.error_at(
                            sub_profile.span(),
                            &key,
                            format!("network {parsed} is claimed twice"),
                        )
                    })?;
                claimed.push((parsed, profile));
            }
            schools.push(School {
                id: s.id.get_ref().clone(),
                name: s.name.clone(),
                profile,
                networks: claimed,
            });
        }
        let default_profile = match &config.defaults.profile {
            Some(p) => Some(profile_index(p, "defaults.profile")?),
            None => None,
        };
        let device_default_profile = match &config.devices.default_profile {
            Some(p) => Some(profile_index(p, "devices.default_profile")?),
            None => None,
        };
        let (devices, devices_stamp) = match &config.devices.file {
            Some(path) => {
                let stamp = FileStamp::of(path).ok();
                (compile_devices(path, &profiles, &schools)?, stamp)
            }
            None => (Devices::default(), None),
        };

        let total: usize = categories.iter().map(Category::entries).sum();
        let filter = NameFilter::build(
            total,
            categories
                .iter()
                .enumerate()
                .flat_map(|(i, c)| c.compiled.table.fingerprints().map(move |h| (h, i as u32))),
        );
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        source.text.hash(&mut hasher);
        devices_stamp.hash(&mut hasher);
        exceptions_in_force.hash(&mut hasher);
        for category in &categories {
            for file in &category.compiled.files {
                file.path.hash(&mut hasher);
                file.stamp.hash(&mut hasher);
            }
        }
        self.previous = kept;
        Ok(Policy {
            categories,
            configured_profiles: profile_names.len(),
            profiles,
            schools,
            networks,
            default_profile,
            devices,
            device_default_profile,
            filter,
            version: hasher.finish(),
            check_name: config.tls.hostname.as_ref().map(|h| {
                format!("check.{}", h.get_ref().trim_end_matches('.'))
                    .to_ascii_lowercase()
                    .into_bytes()
                    .into_boxed_slice()
            }),
        })
    }
}

/// The category name of district-wide exceptions; a school's are `exception:<school id>`.
pub const EXCEPTIONS_CATEGORY: &str = "exception";

/// One exception as the table takes it: file index, line, name, action.
type ExceptionEntry = (u16, u32, String, lists::Action);

/// Exception entries of one scope: `None` is the district, `Some(id)` a school.
type ExceptionTables = Vec<(Option<String>, CompiledCategory)>;

/// Compiles the exceptions in force now: those of the exceptions file (file index 0) and the
/// schools' `allow`/`block` keys in the config (file index 1), one table per scope. Returns
/// the tables and the ids in force (they change the policy's version when one expires).
fn compile_exceptions(
    loaded: &LoadedConfig,
) -> Result<(ExceptionTables, Vec<String>), CompileError> {
    let (config, source) = (&loaded.config, &loaded.source);
    let now = crate::hitlog::now_ms();
    let file = config.console.exceptions.clone();
    let listed = match &file {
        Some(path) => crate::exceptions::read(path)
            .map_err(|e| source.error("console.exceptions", format!("{e:#}")))?,
        None => Vec::new(),
    };
    let mut scopes: std::collections::BTreeMap<Option<String>, Vec<ExceptionEntry>> =
        Default::default();
    let mut in_force = Vec::new();
    for exception in listed.iter().filter(|e| e.in_force(now)) {
        if let Some(school) = &exception.school
            && !config.has_school(school)
        {
            tracing::warn!(id = %exception.id, %school, "exception for a school that is not in the config; not applied");
            continue;
        }
        in_force.push(exception.id.clone());
        scopes.entry(exception.school.clone()).or_default().push((
            0,
            exception.line,
            exception.name.clone(),
            exception.action,
        ));
    }
    for (i, school) in config.schools.iter().enumerate() {
        for (field, action, entries) in [
            ("allow", lists::Action::Allow, &school.allow),
            ("block", lists::Action::Block, &school.block),
        ] {
            for entry in entries {
                let mut name = String::new();
                crate::name::normalize_entry(entry.get_ref(), &mut name).map_err(|e| {
                    source.error_at(
                        entry.span(),
                        &format!("schools[{i}].{field}"),
                        format!("{:?}: {e}", entry.get_ref()),
                    )
                })?;
                let line = source.text[..entry.span().start].matches('\n').count() as u32 + 1;
                scopes
                    .entry(Some(school.id.get_ref().clone()))
                    .or_default()
                    .push((1, line, name, action));
            }
        }
    }
    let stamp = |path: &Path| {
        FileStamp::of(path).unwrap_or(FileStamp {
            len: 0,
            modified: None,
            inode: 0,
        })
    };
    let files = |_: ()| {
        let exceptions_file = file
            .clone()
            .unwrap_or_else(|| PathBuf::from("(no exceptions file)"));
        vec![
            CompiledFile {
                report: lists::ParseReport::default(),
                stamp: stamp(&exceptions_file),
                path: exceptions_file,
            },
            CompiledFile {
                path: source.file.clone(),
                report: lists::ParseReport::default(),
                stamp: stamp(&source.file),
            },
        ]
    };
    let tables = scopes
        .into_iter()
        .map(|(scope, entries)| {
            let mut builder = DomainTableBuilder::with_capacity(entries.len());
            for (file, line, name, action) in &entries {
                builder.insert(name, *file, *line, *action, lists::Scope::Subtree);
            }
            (
                scope,
                CompiledCategory {
                    files: files(()),
                    table: builder.build(),
                },
            )
        })
        .collect();
    Ok((tables, in_force))
}

/// Reads the devices file and resolves each device's profile and school; mistakes name the
/// devices file, line and key.
fn compile_devices(
    path: &Path,
    profiles: &[Profile],
    schools: &[School],
) -> Result<Devices, CompileError> {
    let loaded = crate::devices::file::read(path)?;
    let source = &loaded.source;
    let mut devices = Devices::default();
    for (i, entry) in loaded.file.devices.iter().enumerate() {
        let profile = profiles
            .iter()
            .position(|p| &p.name == entry.profile.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
                source.error_at(
                    entry.profile.span(),
                    &format!("devices[{i}].profile"),
                    format!(
                        "unknown profile {:?} (known: {})",
                        entry.profile.get_ref(),
                        known.join(", ")
                    ),
                )
            })?;
        let school = match &entry.school {
            Some(id) => Some(
                schools
                    .iter()
                    .position(|s| &s.id == id.get_ref())
                    .ok_or_else(|| {
                        source.error_at(
                            id.span(),
                            &format!("devices[{i}].school"),
                            format!("unknown school {:?}", id.get_ref()),
                        )
                    })? as u32,
            ),
            None => None,
        };
        devices.push(Device {
            id: entry.id.get_ref().clone(),
            name: entry.name.clone(),
            profile: profile as u32,
            school,
            share_with_school: entry.share_with_school,
            revoked: entry.revoked,
            token: entry.token.get_ref().clone(),
        });
    }
    Ok(devices)
}

fn parse_answer(answer: &str) -> Option<BlockAnswer> {
    match answer.to_ascii_lowercase().as_str() {
        "nxdomain" => Some(BlockAnswer::Nxdomain),
        "null" => Some(BlockAnswer::Null),
        other => other.parse().ok().map(BlockAnswer::Address),
    }
}

/// A CIDR network; a bare address means that one host.
/// A network as the table keys it: host bits cleared, and an IPv4-mapped IPv6 network
/// (`::ffff:10.1.0.0/112`) as the IPv4 network it is, since clients on dual-stack sockets are
/// matched as IPv4 (so the same network written both ways is caught as claimed twice).
fn parse_network(text: &str) -> Option<IpNet> {
    let net = text
        .parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))?;
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
    {
        return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
            .ok()
            .map(|n| IpNet::V4(n.trunc()));
    }
    Some(net.trunc())
}

/// `10.1.2.3/16` is read as `10.1.0.0/16`: likely a typo for another prefix, so say so (with
/// the place in the config) without refusing the config.
fn warn_host_bits(
    source: &crate::config::SourceText,
    span: std::ops::Range<usize>,
    key: &str,
    text: &str,
    parsed: IpNet,
) {
    let as_written = text
        .parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from));
    if let Some(written) = as_written
        && written.addr() != written.network()
    {
        let note = source.error_at(
            span,
            key,
            format!("{text} has host bits set; it is read as {parsed}"),
        );
        tracing::warn!("{note}");
    }
}
