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

use super::SERVICE_PREFIX;
use super::bloom::NameFilter;
use super::decision::BlockAnswer;
use super::devices::{Device, Devices};
use super::matcher::{DomainTableBuilder, MAX_FILES};
use super::networks::{NetworkTarget, Networks};
use super::profiles::{Because, ExceptionProbe, Probe, Profile, Role};
use super::time::{
    Active, CalendarEffect, CalendarEntry, Schedule, Slot, TimeRule, TimeRules, VariantKey,
};
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
                service: None,
                compiled,
            });
        }
        let configured = categories.len();
        // The services catalogue: one table per service, after the configured categories.
        let catalog = match &config.services.catalog {
            Some(path) => crate::services::read(path)?,
            None => crate::services::Catalog::default(),
        };
        for service in &catalog.services {
            let files = vec![(
                service.file.clone(),
                FileStamp::of(&service.file).map_err(|e| {
                    source.error(
                        "services.catalog",
                        format!("cannot read list {}: {e}", service.file.display()),
                    )
                })?,
            )];
            let compiled = match self.previous.get(&files) {
                Some(previous) => Arc::clone(previous),
                None => Arc::new(compile_category(&files).map_err(|e| {
                    source.error(
                        "services.catalog",
                        format!("{}: {e}", service.file.display()),
                    )
                })?),
            };
            kept.insert(files, Arc::clone(&compiled));
            categories.push(Category {
                name: format!("{SERVICE_PREFIX}{}", service.id),
                description: Some(service.description.clone()),
                url_rules: 0,
                locked: false,
                service: Some(service.id.clone()),
                compiled,
            });
        }
        let tables = Tables {
            names: categories.iter().map(|c| c.name.clone()).collect(),
            configured,
            catalog: &catalog,
        };
        let profile_names: Vec<String> = config.profiles.keys().cloned().collect();
        let schedule_names: Vec<String> = config.schedules.keys().cloned().collect();
        let mut time = TimeRules {
            schedules: compile_schedules(loaded)?,
            zones: vec![crate::hitlog::time::zone(&config.hitlog)],
            ..TimeRules::default()
        };
        let mut zone_names: Vec<String> = vec![String::new()];
        let rules_of = |time: &mut TimeRules,
                        source: &crate::config::SourceText,
                        prefix: &str,
                        whens: &[crate::config::WhenConfig]|
         -> Result<Vec<u32>, CompileError> {
            let mut indices = Vec::new();
            for (i, when) in whens.iter().enumerate() {
                let key = format!("{prefix}.when[{i}]");
                let rule =
                    compile_rule(source, &key, when, &tables, &profile_names, &schedule_names)?;
                indices.push(time.rules.len() as u32);
                time.rules.push(rule);
            }
            Ok(indices)
        };

        let mut profiles = Vec::new();
        for (name, p) in &config.profiles {
            let key = |field: &str| format!("profiles.{name}.{field}");
            let block = tables.resolve(
                source,
                &key("block"),
                &p.block,
                &key("block_services"),
                &p.block_services,
            )?;
            let allow = tables.resolve(
                source,
                &key("allow"),
                &p.allow,
                &key("allow_services"),
                &p.allow_services,
            )?;
            if let Some(both) = p.block.iter().find(|b| p.allow.contains(b)) {
                return Err(source.error_at(
                    both.span(),
                    &key("block"),
                    format!("category {:?} is both blocked and allowed", both.get_ref()),
                ));
            }
            if let Some(both) = p
                .block_services
                .iter()
                .find(|b| p.allow_services.contains(b))
            {
                return Err(source.error_at(
                    both.span(),
                    &key("block_services"),
                    format!("service {:?} is both blocked and allowed", both.get_ref()),
                ));
            }
            let answer = parse_answer(p.answer.get_ref()).ok_or_else(|| {
                source.error_at(
                    p.answer.span(),
                    &key("answer"),
                    format!(
                        "{:?} is not \"nxdomain\", \"null\" or an IP address",
                        p.answer.get_ref()
                    ),
                )
            })?;
            let rules = rules_of(&mut time, source, &format!("profiles.{name}"), &p.when)?;
            time.profile_rules.push(rules);
            profiles.push(Profile {
                name: name.clone(),
                description: p.description.clone(),
                probes: probes_for(&categories, &allow, &block),
                block,
                allow,
                safe_search: p.safe_search,
                answer,
                bypass_protection: p.bypass_protection,
                block_unlisted: p.block_unlisted,
                exceptions: Vec::new(),
                configured: profiles.len() as u32,
                because: None,
            });
        }
        // The console's service toggles, on top of the config's own.
        let toggles = match &config.console.service_toggles {
            Some(path) => Some(crate::services::read_toggles(path)?),
            None => None,
        };
        let toggled = |kind: &str, name: &str| -> Result<Option<BlockAllow>, CompileError> {
            let Some(loaded) = &toggles else {
                return Ok(None);
            };
            let map = if kind == "profiles" {
                &loaded.file.profiles
            } else {
                &loaded.file.schools
            };
            let Some(toggle) = map.get(name) else {
                return Ok(None);
            };
            let key = format!("{kind}.{name}");
            let block = tables.resolve(
                &loaded.source,
                "",
                &[],
                &format!("{key}.block_services"),
                &toggle.block_services,
            )?;
            let allow = tables.resolve(
                &loaded.source,
                "",
                &[],
                &format!("{key}.allow_services"),
                &toggle.allow_services,
            )?;
            if let Some(both) = toggle
                .block_services
                .iter()
                .find(|b| toggle.allow_services.contains(b))
            {
                return Err(loaded.source.error_at(
                    both.span(),
                    &format!("{key}.block_services"),
                    format!("service {:?} is both blocked and allowed", both.get_ref()),
                ));
            }
            Ok(Some((block, allow)))
        };
        if let Some(loaded) = &toggles {
            let unknown = loaded
                .file
                .profiles
                .keys()
                .map(|p| ("profiles", p, config.profiles.contains_key(p)))
                .chain(
                    loaded
                        .file
                        .schools
                        .keys()
                        .map(|s| ("schools", s, config.has_school(s))),
                )
                .find(|(_, _, known)| !known);
            if let Some((kind, name, _)) = unknown {
                let line = loaded
                    .source
                    .text
                    .find(&format!("[{kind}.{name}]"))
                    .map_or(0, |at| loaded.source.locate(at).0);
                let mut err = loaded.source.error(
                    &format!("{kind}.{name}"),
                    format!("no {} {name:?} in the config", &kind[..kind.len() - 1]),
                );
                err.line = line;
                return Err(err);
            }
        }
        for (index, name) in profile_names.iter().enumerate() {
            if let Some((block, allow)) = toggled("profiles", name)? {
                let profile = &mut profiles[index];
                for table in block {
                    if !profile.block.contains(&table) {
                        profile.block.push(table);
                    }
                }
                for table in allow {
                    if !profile.allow.contains(&table) {
                        profile.allow.push(table);
                    }
                }
                profile.probes = probes_for(&categories, &profile.allow, &profile.block);
            }
        }
        // Exceptions: one table for the district (every profile consults it) and one per
        // school that has any (its places consult it first).
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
                service: None,
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
        let profile_index =
            |r: &toml::Spanned<String>, key: &str| profile_index_in(&profile_names, source, r, key);
        let mut slots: HashMap<Slot, u32> = HashMap::new();
        let mut slot_for = |time: &mut TimeRules, slot: Slot| -> u32 {
            *slots.entry(slot.clone()).or_insert_with(|| {
                time.slots.push(slot);
                time.slots.len() as u32 - 1
            })
        };
        let mut zone_of = |time: &mut TimeRules,
                           source: &crate::config::SourceText,
                           key: &str,
                           name: Option<&toml::Spanned<String>>,
                           default: u32|
         -> Result<u32, CompileError> {
            let Some(name) = name else {
                return Ok(default);
            };
            if let Some(i) = zone_names.iter().position(|z| z == name.get_ref()) {
                return Ok(i as u32);
            }
            let zone = jiff::tz::TimeZone::get(name.get_ref()).map_err(|_| {
                source.error_at(
                    name.span(),
                    key,
                    format!(
                        "{:?} is not a time zone (e.g. \"Asia/Ho_Chi_Minh\")",
                        name.get_ref()
                    ),
                )
            })?;
            zone_names.push(name.get_ref().clone());
            time.zones.push(zone);
            Ok(time.zones.len() as u32 - 1)
        };

        let mut schools: Vec<School> = Vec::new();
        let mut school_zones: Vec<u32> = Vec::new();
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
            let school_index = schools.len() as u32;
            let zone = zone_of(
                &mut time,
                source,
                &format!("{prefix}.timezone"),
                s.timezone.as_ref(),
                0,
            )?;
            let mut block = tables.resolve(
                source,
                "",
                &[],
                &format!("{prefix}.block_services"),
                &s.block_services,
            )?;
            let mut allow = tables.resolve(
                source,
                "",
                &[],
                &format!("{prefix}.allow_services"),
                &s.allow_services,
            )?;
            if let Some((more_block, more_allow)) = toggled("schools", s.id.get_ref())? {
                block.extend(more_block);
                allow.extend(more_allow);
            }
            let rules = rules_of(&mut time, source, &prefix, &s.when)?;
            // Exams switch the places that use the school's own profile; a subnet with a
            // profile of its own (the staff's) keeps it.
            let place = |base: u32, block: Vec<u32>, allow: Vec<u32>| Slot {
                base,
                school: Some(school_index),
                exams: base == profile,
                zone,
                block,
                allow,
                rules: rules.clone(),
                exceptions: school_exceptions.get(s.id.get_ref()).copied(),
            };
            let slot = slot_for(&mut time, place(profile, block.clone(), allow.clone()));
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
                    slot,
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
            for (cidr, subnet) in &s.subnets {
                let key = format!("{prefix}.subnets");
                let sub_profile = &subnet.profile();
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
                let sub_index = profile_index(sub_profile, &key)?;
                let (sub_block, sub_allow) = subnet.services();
                let mut block = block.clone();
                block.extend(tables.resolve(
                    source,
                    "",
                    &[],
                    &format!("{key}.block_services"),
                    &sub_block,
                )?);
                let mut allow = allow.clone();
                allow.extend(tables.resolve(
                    source,
                    "",
                    &[],
                    &format!("{key}.allow_services"),
                    &sub_allow,
                )?);
                let sub_slot = slot_for(&mut time, place(sub_index, block, allow));
                networks
                    .insert(
                        parsed,
                        NetworkTarget {
                            school: school_index,
                            slot: sub_slot,
                        },
                    )
                    .map_err(|_| {
                        source.error_at(
                            sub_profile.span(),
                            &key,
                            format!("network {parsed} is claimed twice"),
                        )
                    })?;
                claimed.push((parsed, sub_index));
            }
            school_zones.push(zone);
            schools.push(School {
                id: s.id.get_ref().clone(),
                name: s.name.clone(),
                profile,
                slot,
                networks: claimed,
            });
        }
        let plain_slot = |base: u32| Slot {
            base,
            school: None,
            exams: false,
            zone: 0,
            block: Vec::new(),
            allow: Vec::new(),
            rules: Vec::new(),
            exceptions: None,
        };
        let default_slot = match &config.defaults.profile {
            Some(p) => {
                let base = profile_index(p, "defaults.profile")?;
                let slot = plain_slot(base);
                Some(slot_for(&mut time, slot))
            }
            None => None,
        };
        let device_default_slot = match &config.devices.default_profile {
            Some(p) => {
                let base = profile_index(p, "devices.default_profile")?;
                let slot = plain_slot(base);
                Some(slot_for(&mut time, slot))
            }
            None => None,
        };
        let (devices, devices_stamp) = match &config.devices.file {
            Some(path) => {
                let stamp = FileStamp::of(path).ok();
                let loaded_devices = crate::devices::file::read(path)?;
                let dsource = &loaded_devices.source;
                let mut devices = Devices::default();
                for (i, entry) in loaded_devices.file.devices.iter().enumerate() {
                    let key = |field: &str| format!("devices[{i}].{field}");
                    let profile =
                        profile_index_in(&profile_names, dsource, &entry.profile, &key("profile"))?;
                    let school = match &entry.school {
                        Some(id) => Some(
                            schools
                                .iter()
                                .position(|s| &s.id == id.get_ref())
                                .ok_or_else(|| {
                                    dsource.error_at(
                                        id.span(),
                                        &key("school"),
                                        format!("unknown school {:?}", id.get_ref()),
                                    )
                                })? as u32,
                        ),
                        None => None,
                    };
                    let default_zone = school.map_or(0, |s| school_zones[s as usize]);
                    let zone = zone_of(
                        &mut time,
                        dsource,
                        &key("timezone"),
                        entry.timezone.as_ref(),
                        default_zone,
                    )?;
                    let block = tables.resolve(
                        dsource,
                        "",
                        &[],
                        &key("block_services"),
                        &entry.block_services,
                    )?;
                    let allow = tables.resolve(
                        dsource,
                        "",
                        &[],
                        &key("allow_services"),
                        &entry.allow_services,
                    )?;
                    let rules =
                        rules_of(&mut time, dsource, &format!("devices[{i}]"), &entry.when)?;
                    let slot = slot_for(
                        &mut time,
                        Slot {
                            base: profile,
                            school,
                            exams: false,
                            zone,
                            block,
                            allow,
                            rules,
                            exceptions: None,
                        },
                    );
                    devices.push(Device {
                        id: entry.id.get_ref().clone(),
                        name: entry.name.clone(),
                        profile,
                        slot,
                        school,
                        share_with_school: entry.share_with_school,
                        revoked: entry.revoked,
                        token: entry.token.get_ref().clone(),
                    });
                }
                (devices, stamp)
            }
            None => (Devices::default(), None),
        };
        let calendar = crate::calendar::read(config)?;
        let compiled_calendar = calendar
            .entries
            .iter()
            .map(|entry| CalendarEntry {
                name: entry.name.clone(),
                effect: match &entry.effect {
                    crate::calendar::Effect::Exam { profile } => CalendarEffect::Exam(
                        profile_names.iter().position(|p| p == profile).unwrap_or(0) as u32,
                    ),
                    crate::calendar::Effect::Holiday { schedules } => {
                        CalendarEffect::Holiday(schedules.as_ref().map(|names| {
                            names
                                .iter()
                                .filter_map(|n| schedule_names.iter().position(|s| s == n))
                                .map(|i| i as u32)
                                .collect()
                        }))
                    }
                },
                schools: entry.schools.as_ref().map(|ids| {
                    ids.iter()
                        .filter_map(|id| schools.iter().position(|s| &s.id == id))
                        .map(|i| i as u32)
                        .collect()
                }),
                days: entry.days.clone(),
                origin: entry.origin.clone(),
            })
            .collect();
        time.set_calendar(compiled_calendar);
        // Every variant any place can reach, compiled once; the configured profiles as they
        // are come first, at their own indices.
        let mut variants: HashMap<VariantKey, u32> = (0..profiles.len() as u32)
            .map(|p| (VariantKey::plain(p), p))
            .collect();
        let mut initial = Vec::with_capacity(time.slots.len());
        let now = crate::clock::now_ms();
        for slot in 0..time.slots.len() as u32 {
            for key in time.reachable_keys(slot) {
                if let std::collections::hash_map::Entry::Vacant(slot) = variants.entry(key) {
                    let variant = compose(&profiles, &categories, &time, slot.key());
                    profiles.push(variant);
                    slot.insert(profiles.len() as u32 - 1);
                }
            }
            let key = time.key_at_instant(slot, now);
            initial.push(
                variants
                    .get(&key)
                    .copied()
                    .unwrap_or(time.slots[slot as usize].base),
            );
        }
        let active = Active::new(&initial);
        super::time::refresh(&time, &variants, &active, now);

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
        calendar.entries.hash(&mut hasher);
        if let Some(path) = &config.services.catalog {
            FileStamp::of(path).ok().hash(&mut hasher);
        }
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
            default_slot,
            devices,
            device_default_slot,
            time,
            variants,
            active,
            services: catalog,
            calendar_files: calendar.imported,
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

/// Tables blocked and allowed.
type BlockAllow = (Vec<u32>, Vec<u32>);

/// Names of the policy's tables, to resolve `block`/`allow` (configured categories) and
/// `block_services`/`allow_services` (the catalogue's services) with located errors.
struct Tables<'a> {
    names: Vec<String>,
    configured: usize,
    catalog: &'a crate::services::Catalog,
}

impl Tables<'_> {
    /// Table indices of the categories and services named, categories first.
    fn resolve(
        &self,
        source: &crate::config::SourceText,
        categories_key: &str,
        categories: &[toml::Spanned<String>],
        services_key: &str,
        services: &[toml::Spanned<String>],
    ) -> Result<Vec<u32>, CompileError> {
        let mut tables = Vec::with_capacity(categories.len() + services.len());
        for r in categories {
            let index = self.names[..self.configured]
                .iter()
                .position(|c| c == r.get_ref())
                .ok_or_else(|| {
                    source.error_at(
                        r.span(),
                        categories_key,
                        format!(
                            "unknown category {:?} (known: {})",
                            r.get_ref(),
                            self.names[..self.configured].join(", ")
                        ),
                    )
                })?;
            tables.push(index as u32);
        }
        for r in services {
            let wanted = format!("{SERVICE_PREFIX}{}", r.get_ref());
            let index = self
                .names
                .iter()
                .position(|c| c == &wanted)
                .ok_or_else(|| {
                    let message = if self.catalog.path.is_none() {
                        format!(
                            "unknown service {:?}: no [services] catalog is configured",
                            r.get_ref()
                        )
                    } else {
                        format!(
                            "unknown service {:?} (known: {})",
                            r.get_ref(),
                            self.catalog.ids().join(", ")
                        )
                    };
                    source.error_at(r.span(), services_key, message)
                })?;
            tables.push(index as u32);
        }
        Ok(tables)
    }
}

/// A configured profile's index by name, with a located error.
fn profile_index_in(
    names: &[String],
    source: &crate::config::SourceText,
    r: &toml::Spanned<String>,
    key: &str,
) -> Result<u32, CompileError> {
    names
        .iter()
        .position(|p| p == r.get_ref())
        .map(|i| i as u32)
        .ok_or_else(|| {
            source.error_at(
                r.span(),
                key,
                format!(
                    "unknown profile {:?} (known: {})",
                    r.get_ref(),
                    names.join(", ")
                ),
            )
        })
}

/// A profile's probes: every allowed table, then every blocked one.
fn probes_for(categories: &[Category], allow: &[u32], block: &[u32]) -> Vec<Probe> {
    let mut probes = Vec::with_capacity(allow.len() + block.len());
    for (tables, role) in [(allow, Role::Allow), (block, Role::Block)] {
        for &category in tables {
            if probes
                .iter()
                .any(|p: &Probe| p.category == category && p.role == role)
            {
                continue;
            }
            probes.push(Probe {
                category,
                role,
                has_allow_rules: categories[category as usize]
                    .compiled
                    .table
                    .has_allow_rules(),
            });
        }
    }
    probes
}

/// The profile a variant key stands for: its configured profile with the place's and the open
/// rules' additions, the school's exceptions first, and what made it differ (for `explain`).
fn compose(
    profiles: &[Profile],
    categories: &[Category],
    time: &TimeRules,
    key: &VariantKey,
) -> Profile {
    let mut profile = profiles[key.profile as usize].clone();
    let mut because = Because {
        switched: match (key.exam, key.switch) {
            (Some(e), _) => {
                let entry = &time.calendar[e as usize];
                Some(format!("exam \"{}\" ({})", entry.name, entry.origin))
            }
            (None, Some(r)) => {
                let rule = &time.rules[r as usize];
                let schedule = &time.schedules[rule.schedule as usize];
                Some(format!("schedule \"{}\" ({})", schedule.name, rule.origin))
            }
            (None, None) => None,
        },
        added: Vec::new(),
    };
    profile.block.extend(key.block.iter().copied());
    profile.allow.extend(key.allow.iter().copied());
    for &r in &key.rules {
        let rule = &time.rules[r as usize];
        let schedule = &time.schedules[rule.schedule as usize];
        let cause = format!("schedule \"{}\" ({})", schedule.name, rule.origin);
        for &table in &rule.block {
            profile.block.push(table);
            because.added.push((table, cause.clone()));
        }
        for &table in &rule.allow {
            profile.allow.push(table);
            because.added.push((table, cause.clone()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    profile.block.retain(|t| seen.insert(*t));
    let mut seen = std::collections::HashSet::new();
    profile.allow.retain(|t| seen.insert(*t));
    profile.probes = probes_for(categories, &profile.allow, &profile.block);
    if let Some(category) = key.exceptions {
        profile.exceptions.insert(
            0,
            ExceptionProbe {
                category,
                district: false,
            },
        );
    }
    if because.switched.is_some() || !because.added.is_empty() {
        profile.because = Some(Box::new(because));
    }
    profile
}

/// A `when` rule, its references resolved.
fn compile_rule(
    source: &crate::config::SourceText,
    key: &str,
    when: &crate::config::WhenConfig,
    tables: &Tables<'_>,
    profiles: &[String],
    schedules: &[String],
) -> Result<TimeRule, CompileError> {
    let schedule = schedules
        .iter()
        .position(|s| s == when.schedule.get_ref())
        .ok_or_else(|| {
            source.error_at(
                when.schedule.span(),
                &format!("{key}.schedule"),
                format!(
                    "unknown schedule {:?} (known: {})",
                    when.schedule.get_ref(),
                    schedules.join(", ")
                ),
            )
        })? as u32;
    let switch = match &when.profile {
        Some(p) => Some(profile_index_in(
            profiles,
            source,
            p,
            &format!("{key}.profile"),
        )?),
        None => None,
    };
    let block = tables.resolve(
        source,
        &format!("{key}.block"),
        &when.block,
        &format!("{key}.block_services"),
        &when.block_services,
    )?;
    let allow = tables.resolve(
        source,
        &format!("{key}.allow"),
        &when.allow,
        &format!("{key}.allow_services"),
        &when.allow_services,
    )?;
    if switch.is_none() && block.is_empty() && allow.is_empty() {
        return Err(source.error_at(
            when.schedule.span(),
            key,
            "this rule does nothing: give it a profile, or categories or services to block or allow",
        ));
    }
    let line = source.locate(when.schedule.span().start).0;
    Ok(TimeRule {
        schedule,
        switch,
        block,
        allow,
        origin: format!("{}:{line} {key}", source.file.display()),
    })
}

/// `[schedules.NAME]`: days and `HH:MM-HH:MM` windows, checked: a misspelt day, a malformed
/// or empty window, or two windows of one schedule that overlap are errors at their line.
fn compile_schedules(loaded: &LoadedConfig) -> Result<Vec<Schedule>, CompileError> {
    let source = &loaded.source;
    let mut schedules = Vec::new();
    for (name, schedule) in &loaded.config.schedules {
        let key = |field: &str| format!("schedules.{name}.{field}");
        let mut days = 0u8;
        for day in &schedule.days {
            let lower = day.get_ref().to_ascii_lowercase();
            let index = super::time::DAYS
                .iter()
                .position(|d| lower == *d || (lower.len() > 3 && lower.starts_with(d)))
                .ok_or_else(|| {
                    source.error_at(
                        day.span(),
                        &key("days"),
                        format!(
                            "{:?} is not a day (mon, tue, wed, thu, fri, sat, sun)",
                            day.get_ref()
                        ),
                    )
                })?;
            days |= 1 << index;
        }
        if days == 0 {
            return Err(source.error(&key("days"), "no days: this schedule would never open"));
        }
        let mut windows: Vec<(u16, u16)> = Vec::new();
        let mut spans = Vec::new();
        for window in &schedule.times {
            let parsed = parse_window(window.get_ref()).ok_or_else(|| {
                source.error_at(
                    window.span(),
                    &key("times"),
                    format!(
                        "{:?} is not a window like \"07:00-11:30\"",
                        window.get_ref()
                    ),
                )
            })?;
            windows.push(parsed);
            spans.push(window);
        }
        if windows.is_empty() {
            return Err(source.error(&key("times"), "no times: this schedule would never open"));
        }
        // Minutes of a week each window covers, to find overlaps (a window past midnight
        // continues into the next day).
        let covered = |&(start, end): &(u16, u16)| -> Vec<(u16, u16)> {
            if start < end {
                vec![(start, end)]
            } else {
                vec![(start, 1440), (0, end)]
            }
        };
        for (i, a) in windows.iter().enumerate() {
            for (j, b) in windows.iter().enumerate().take(i) {
                let overlap = covered(a)
                    .iter()
                    .any(|x| covered(b).iter().any(|y| x.0 < y.1 && y.0 < x.1));
                if overlap {
                    return Err(source.error_at(
                        spans[i].span(),
                        &key("times"),
                        format!(
                            "{:?} overlaps {:?}; merge them into one window",
                            spans[i].get_ref(),
                            spans[j].get_ref()
                        ),
                    ));
                }
            }
        }
        let table_line = source
            .text
            .find(&format!("[schedules.{name}]"))
            .map_or(0, |at| source.locate(at).0);
        schedules.push(Schedule {
            name: name.clone(),
            days,
            windows,
            origin: format!("{}:{table_line}", source.file.display()),
        });
    }
    Ok(schedules)
}

/// `HH:MM-HH:MM` as minutes; `24:00` ends the day; equal ends are refused.
fn parse_window(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.split_once('-')?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        match (h, m) {
            (24, 0) => Some(1440),
            (0..=23, 0..=59) => Some(h * 60 + m),
            _ => None,
        }
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    if start == end || start == 1440 {
        return None;
    }
    Some((start, end))
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
