//! Rules in time: schedules, `when` rules, the exam calendar and holidays, compiled so that the
//! query path never reads the clock or looks at a calendar.
//!
//! Every place a profile is used (a school's network or subnet, a device, the defaults) is a
//! [`Slot`]. What a slot applies at an instant (its base profile or the one a rule or an exam
//! switched to, plus the blocks and allows of the rules active then) is a [`VariantKey`];
//! every key a slot can ever reach is enumerated at compile time (one generic week without the
//! calendar, plus every day the calendar touches) and compiled into a profile of its own. The
//! [`Active`] table then says, per slot, which variant applies now, when the next edge is and
//! which variant comes after it. The schedule timer (`crate::schedule_timer`) rewrites it at
//! each edge; a query reads one atomic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;

/// Day names as configs write them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A compiled `[schedules.NAME]`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// Bit `i` set: applies on [`DAYS`]`[i]`.
    pub days: u8,
    /// Windows in minutes of the day; `end < start` runs past midnight, `end` may be 1440.
    pub windows: Vec<(u16, u16)>,
    /// `file:line` of its table.
    pub origin: String,
}

fn day_index(weekday: Weekday) -> u8 {
    weekday.to_monday_zero_offset() as u8
}

impl Schedule {
    /// Whether it is open at `minute` of `date`, and if so the date its window started on
    /// (the day before, for the part of a window that ran past midnight).
    pub fn open_at(&self, date: Date, minute: u16) -> Option<Date> {
        let today = day_index(date.weekday());
        let yesterday = (today + 6) % 7;
        for &(start, end) in &self.windows {
            if start < end {
                if self.days & (1 << today) != 0 && start <= minute && minute < end {
                    return Some(date);
                }
            } else {
                if self.days & (1 << today) != 0 && minute >= start {
                    return Some(date);
                }
                if self.days & (1 << yesterday) != 0 && minute < end {
                    return date.yesterday().ok();
                }
            }
        }
        None
    }

    /// Minutes of the day at which it opens or closes.
    fn boundaries(&self) -> impl Iterator<Item = u16> + '_ {
        self.windows
            .iter()
            .flat_map(|&(start, end)| [start, end % 1440])
    }

    /// The first opening or closing after `after_ms`, in `zone` (within eight days).
    fn next_edge(&self, zone: &TimeZone, after_ms: i64) -> Option<i64> {
        let local = local(zone, after_ms).date();
        let mut best: Option<i64> = None;
        for offset in -1i64..=8 {
            let Ok(date) = local.checked_add(jiff::Span::new().days(offset)) else {
                continue;
            };
            if self.days & (1 << day_index(date.weekday())) == 0 {
                continue;
            }
            for &(start, end) in &self.windows {
                let end_date = if end <= start {
                    date.tomorrow().ok()
                } else {
                    Some(date)
                };
                let candidates = [Some((date, start)), end_date.map(|d| (d, end))];
                for (day, minute) in candidates.into_iter().flatten() {
                    if let Some(at) = instant(zone, day, minute)
                        && at > after_ms
                        && best.is_none_or(|b| at < b)
                    {
                        best = Some(at);
                    }
                }
            }
        }
        best
    }
}

/// The local date-time of an instant.
pub fn local(zone: &TimeZone, at_ms: i64) -> DateTime {
    Timestamp::from_millisecond(at_ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(zone.clone())
        .datetime()
}

/// The instant of `minute` (0..=1440) of a local date; a time skipped by a DST change is
/// read as the moment after the gap.
pub fn instant(zone: &TimeZone, date: Date, minute: u16) -> Option<i64> {
    let (date, minute) = if minute >= 1440 {
        (date.tomorrow().ok()?, minute - 1440)
    } else {
        (date, minute)
    };
    let civil = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    zone.to_ambiguous_zoned(civil)
        .compatible()
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// A compiled `when` rule.
#[derive(Debug, Clone)]
pub struct TimeRule {
    /// Index of its schedule.
    pub schedule: u32,
    /// The (configured) profile it switches to.
    pub switch: Option<u32>,
    /// Categories (and services' tables) it blocks.
    pub block: Vec<u32>,
    /// Categories (and services' tables) it allows.
    pub allow: Vec<u32>,
    /// Where it is written: `config/schooldns.toml:120 profiles.lower-secondary.when[0]`.
    pub origin: String,
}

/// What a calendar entry does, compiled.
#[derive(Debug, Clone)]
pub enum CalendarEffect {
    /// Switch to this (configured) profile.
    Exam(u32),
    /// Switch these schedules off (`None`: all).
    Holiday(Option<Vec<u32>>),
}

/// A compiled calendar entry.
#[derive(Debug, Clone)]
pub struct CalendarEntry {
    /// Its name.
    pub name: String,
    /// What it does.
    pub effect: CalendarEffect,
    /// School indices (`None`: all, devices included).
    pub schools: Option<Vec<u32>>,
    /// Day ranges, both ends included.
    pub days: Vec<(Date, Date)>,
    /// Where it is written.
    pub origin: String,
}

impl CalendarEntry {
    /// Whether it applies on `date`.
    pub fn covers(&self, date: Date) -> bool {
        self.days.iter().any(|&(a, b)| a <= date && date <= b)
    }

    /// Whether it applies to the school with this index (`None`: a device without one).
    pub fn applies_to(&self, school: Option<u32>) -> bool {
        match (&self.schools, school) {
            (None, _) => true,
            (Some(ids), Some(id)) => ids.contains(&id),
            (Some(_), None) => false,
        }
    }
}

/// Where a profile is used, with what the place adds to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The configured profile.
    pub base: u32,
    /// School index, for the calendar (a device's school, for holidays only).
    pub school: Option<u32>,
    /// Whether exams switch it (a school's networks and subnets with its own profile; not
    /// devices, nor a staff subnet).
    pub exams: bool,
    /// Index into the zones.
    pub zone: u32,
    /// Tables always blocked here on top of the profile (services of a school, subnet, device).
    pub block: Vec<u32>,
    /// Tables always allowed here.
    pub allow: Vec<u32>,
    /// The place's own rules (a school's, then a device's), indices into the rules.
    pub rules: Vec<u32>,
    /// The school's exceptions table, consulted first.
    pub exceptions: Option<u32>,
}

/// What a slot applies at one moment: compiled into one profile per distinct key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VariantKey {
    /// The configured profile in force.
    pub profile: u32,
    /// The exam entry that switched it.
    pub exam: Option<u32>,
    /// The rule that switched it.
    pub switch: Option<u32>,
    /// Active rules that add blocks or allows.
    pub rules: Vec<u32>,
    /// The place's own additions.
    pub block: Vec<u32>,
    /// The place's own allows.
    pub allow: Vec<u32>,
    /// The school's exceptions table.
    pub exceptions: Option<u32>,
}

impl VariantKey {
    /// The key of a configured profile used as it is.
    pub fn plain(profile: u32) -> VariantKey {
        VariantKey {
            profile,
            exam: None,
            switch: None,
            rules: Vec::new(),
            block: Vec::new(),
            allow: Vec::new(),
            exceptions: None,
        }
    }
}

/// Everything time-dependent of a policy.
#[derive(Debug, Default)]
pub struct TimeRules {
    /// Schedules by index.
    pub schedules: Vec<Schedule>,
    /// Every `when` rule.
    pub rules: Vec<TimeRule>,
    /// Rule indices of each configured profile.
    pub profile_rules: Vec<Vec<u32>>,
    /// The calendar.
    pub calendar: Vec<CalendarEntry>,
    /// Time zones by index; 0 is `[hitlog] timezone`.
    pub zones: Vec<TimeZone>,
    /// Every slot.
    pub slots: Vec<Slot>,
    /// The calendar by day: the entries (indices, in calendar order) covering each date.
    pub(crate) days: BTreeMap<Date, Vec<u32>>,
}

/// The longest day range a calendar entry may span (two years).
pub const MAX_RANGE_DAYS: i64 = 732;

/// The civil moment a state is evaluated at, and whether the calendar counts.
#[derive(Clone, Copy)]
struct Moment {
    date: Date,
    minute: u16,
    calendar: bool,
}

impl TimeRules {
    /// Whether any slot's rules ever change with time.
    pub fn is_static(&self) -> bool {
        self.rules.is_empty() && self.calendar.is_empty()
    }

    /// Sets the calendar and indexes it by day (ranges beyond [`MAX_RANGE_DAYS`] are cut).
    pub fn set_calendar(&mut self, calendar: Vec<CalendarEntry>) {
        self.days.clear();
        for (index, entry) in calendar.iter().enumerate() {
            for &(first, last) in &entry.days {
                let mut date = first;
                let mut count = 0;
                while date <= last && count < MAX_RANGE_DAYS {
                    let list = self.days.entry(date).or_default();
                    if list.last() != Some(&(index as u32)) {
                        list.push(index as u32);
                    }
                    date = match date.tomorrow() {
                        Ok(d) => d,
                        Err(_) => break,
                    };
                    count += 1;
                }
            }
        }
        self.calendar = calendar;
    }

    /// The calendar entries (indices) covering `date`.
    fn entries_on(&self, date: Date) -> &[u32] {
        self.days.get(&date).map_or(&[], Vec::as_slice)
    }

    /// The entries covering `date` that apply to a slot.
    fn applicable(&self, slot: &Slot, date: Date) -> Vec<u32> {
        self.entries_on(date)
            .iter()
            .copied()
            .filter(|&e| self.calendar[e as usize].applies_to(slot.school))
            .collect()
    }

    fn rule_open(&self, slot: &Slot, rule: u32, at: Moment) -> bool {
        let rule = &self.rules[rule as usize];
        let schedule = &self.schedules[rule.schedule as usize];
        let Some(started) = schedule.open_at(at.date, at.minute) else {
            return false;
        };
        if !at.calendar {
            return true;
        }
        !self.entries_on(started).iter().any(|&e| {
            let entry = &self.calendar[e as usize];
            match &entry.effect {
                CalendarEffect::Holiday(schedules) => {
                    entry.applies_to(slot.school)
                        && schedules
                            .as_ref()
                            .is_none_or(|s| s.contains(&rule.schedule))
                }
                CalendarEffect::Exam(_) => false,
            }
        })
    }

    fn key_at(&self, slot_index: u32, at: Moment) -> VariantKey {
        let slot = &self.slots[slot_index as usize];
        let exam = if at.calendar && slot.exams {
            self.entries_on(at.date)
                .iter()
                .map(|&e| e as usize)
                .find(|&e| {
                    let entry = &self.calendar[e];
                    matches!(entry.effect, CalendarEffect::Exam(_)) && entry.applies_to(slot.school)
                })
        } else {
            None
        };
        let mut profile = slot.base;
        let mut switch = None;
        if let Some(e) = exam {
            if let CalendarEffect::Exam(p) = self.calendar[e].effect {
                profile = p;
            }
        } else {
            // The most specific switch wins: the place's own rules (a device's after its
            // school's), then the profile's, first written first.
            switch = slot
                .rules
                .iter()
                .rev()
                .copied()
                .find(|&r| self.rules[r as usize].switch.is_some() && self.rule_open(slot, r, at))
                .or_else(|| {
                    self.profile_rules[slot.base as usize]
                        .iter()
                        .copied()
                        .find(|&r| {
                            self.rules[r as usize].switch.is_some() && self.rule_open(slot, r, at)
                        })
                });
            if let Some(r) = switch {
                profile = self.rules[r as usize].switch.unwrap_or(profile);
            }
        }
        let mut rules: Vec<u32> = slot
            .rules
            .iter()
            .chain(self.profile_rules[profile as usize].iter())
            .copied()
            .filter(|&r| {
                let rule = &self.rules[r as usize];
                (!rule.block.is_empty() || !rule.allow.is_empty()) && self.rule_open(slot, r, at)
            })
            .collect();
        rules.sort_unstable();
        rules.dedup();
        VariantKey {
            profile,
            exam: exam.map(|e| e as u32),
            switch,
            rules,
            block: slot.block.clone(),
            allow: slot.allow.clone(),
            exceptions: slot.exceptions,
        }
    }

    /// The key of a slot at an instant.
    pub fn key_at_instant(&self, slot: u32, at_ms: i64) -> VariantKey {
        let zone = &self.zones[self.slots[slot as usize].zone as usize];
        let civil = local(zone, at_ms);
        self.key_at(
            slot,
            Moment {
                date: civil.date(),
                minute: (civil.hour() as u16) * 60 + civil.minute() as u16,
                calendar: true,
            },
        )
    }

    /// Minutes of the day at which a slot's state can change.
    fn boundaries(&self, slot: &Slot) -> Vec<u16> {
        let mut minutes: Vec<u16> = vec![0];
        for &rule in slot.rules.iter().chain(self.profile_rules.iter().flatten()) {
            let schedule = &self.schedules[self.rules[rule as usize].schedule as usize];
            minutes.extend(schedule.boundaries());
        }
        minutes.sort_unstable();
        minutes.dedup();
        minutes
    }

    /// Every key a slot can reach: a generic week without the calendar, then every day the
    /// calendar touches for it (and the day after, for windows running past midnight).
    pub fn reachable_keys(&self, slot_index: u32) -> Vec<VariantKey> {
        let slot = &self.slots[slot_index as usize];
        let minutes = self.boundaries(slot);
        let mut keys: Vec<VariantKey> = Vec::new();
        let mut push = |key: VariantKey| {
            if !keys.contains(&key) {
                keys.push(key);
            }
        };
        // 2024-01-01 was a Monday.
        let monday = Date::constant(2024, 1, 1);
        for offset in 0..7 {
            let date = monday
                .checked_add(jiff::Span::new().days(offset))
                .unwrap_or(monday);
            for &minute in &minutes {
                push(self.key_at(
                    slot_index,
                    Moment {
                        date,
                        minute,
                        calendar: false,
                    },
                ));
            }
        }
        // Every day the calendar touches for this slot, and the day after each (a window
        // running past midnight carries the day before into it).
        let mut dates: Vec<Date> = Vec::new();
        for (&date, _) in self.days.iter().filter(|(_, entries)| {
            entries
                .iter()
                .any(|&e| self.calendar[e as usize].applies_to(slot.school))
        }) {
            dates.push(date);
            if let Ok(next) = date.tomorrow() {
                dates.push(next);
            }
        }
        dates.sort_unstable();
        dates.dedup();
        // Days alike for this slot (same weekday, same entries on it and the day before)
        // give the same keys: evaluate one of each.
        let mut seen: HashSet<(u8, Vec<u32>, Vec<u32>)> = HashSet::new();
        let on = |date: Date| self.applicable(slot, date);
        for &date in &dates {
            let before = date.yesterday().map(on).unwrap_or_default();
            if !seen.insert((day_index(date.weekday()), on(date), before)) {
                continue;
            }
            for &minute in &minutes {
                push(self.key_at(
                    slot_index,
                    Moment {
                        date,
                        minute,
                        calendar: true,
                    },
                ));
            }
        }
        keys
    }

    /// The first instant after `after_ms` at which a slot's state may change.
    fn next_edge(&self, slot: &Slot, after_ms: i64, cache: &mut HashMap<(u32, u32), i64>) -> i64 {
        let zone = &self.zones[slot.zone as usize];
        let mut best = i64::MAX;
        let schedules: HashSet<u32> = slot
            .rules
            .iter()
            .chain(self.profile_rules.iter().flatten())
            .map(|&r| self.rules[r as usize].schedule)
            .collect();
        for schedule in schedules {
            let at = *cache.entry((slot.zone, schedule)).or_insert_with(|| {
                self.schedules[schedule as usize]
                    .next_edge(zone, after_ms)
                    .unwrap_or(i64::MAX)
            });
            best = best.min(at);
        }
        // The next local midnight at which the entries applying to this slot change.
        let today = local(zone, after_ms).date();
        let mut last_date = today;
        let mut last_set = self.applicable(slot, today);
        let mut change = None;
        if let Ok(tomorrow) = today.tomorrow() {
            for (&date, _) in self.days.range(tomorrow..) {
                let set = self.applicable(slot, date);
                let gap = last_date.tomorrow().ok() != Some(date);
                if gap && !last_set.is_empty() {
                    change = last_date.tomorrow().ok();
                    break;
                }
                if set != last_set {
                    change = Some(date);
                    break;
                }
                last_date = date;
                last_set = set;
            }
            if change.is_none() && !last_set.is_empty() {
                change = last_date.tomorrow().ok();
            }
        }
        if let Some(at) = change.and_then(|day| instant(zone, day, 0))
            && at > after_ms
        {
            best = best.min(at);
        }
        best
    }
}

/// Per slot: the variant in force, the next edge, and the variant after it. Written by the
/// schedule timer, read by queries (relaxed loads: each value is valid on its own, and a query
/// racing a swap sees either side of the edge).
#[derive(Debug)]
pub struct Active {
    variant: Box<[AtomicU32]>,
    edge_ms: Box<[AtomicI64]>,
    next: Box<[AtomicU32]>,
}

impl Active {
    /// A table for `slots` slots, every one at `variants[i]`, no edge.
    pub fn new(variants: &[u32]) -> Active {
        Active {
            variant: variants.iter().map(|&v| AtomicU32::new(v)).collect(),
            edge_ms: variants.iter().map(|_| AtomicI64::new(i64::MAX)).collect(),
            next: variants.iter().map(|&v| AtomicU32::new(v)).collect(),
        }
    }

    /// The variant in force for a slot.
    #[inline]
    pub fn variant(&self, slot: u32) -> u32 {
        self.variant[slot as usize].load(Ordering::Relaxed)
    }

    /// The next edge of a slot (`i64::MAX`: none) and the variant after it.
    #[inline]
    pub fn next(&self, slot: u32) -> (i64, u32) {
        (
            self.edge_ms[slot as usize].load(Ordering::Relaxed),
            self.next[slot as usize].load(Ordering::Relaxed),
        )
    }

    fn store(&self, slot: usize, variant: u32, edge_ms: i64, next: u32) {
        // The next edge first: a query that sees the new variant also sees its edge.
        self.next[slot].store(next, Ordering::Relaxed);
        self.edge_ms[slot].store(edge_ms, Ordering::Relaxed);
        self.variant[slot].store(variant, Ordering::Release);
    }
}

/// Brings an active table up to `now_ms`; returns the earliest next edge. A key that was not
/// compiled (it cannot happen for times the calendar covers) keeps the slot as it was, and
/// says so.
pub fn refresh(
    rules: &TimeRules,
    variants: &HashMap<VariantKey, u32>,
    active: &Active,
    now_ms: i64,
) -> i64 {
    let mut cache = HashMap::new();
    let mut earliest = i64::MAX;
    for (index, slot) in rules.slots.iter().enumerate() {
        let key = rules.key_at_instant(index as u32, now_ms);
        let Some(&variant) = variants.get(&key) else {
            tracing::error!(
                slot = index,
                ?key,
                "no compiled rules for this moment; keeping the previous ones"
            );
            continue;
        };
        let edge = rules.next_edge(slot, now_ms, &mut cache);
        let next = if edge == i64::MAX {
            variant
        } else {
            variants
                .get(&rules.key_at_instant(index as u32, edge))
                .copied()
                .unwrap_or(variant)
        };
        active.store(index, variant, edge, next);
        earliest = earliest.min(edge);
    }
    earliest
}

/// One stretch of a week during which a slot's rules stay the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    /// Local start.
    pub from: DateTime,
    /// Local end (exclusive).
    pub to: DateTime,
    /// The variant in force.
    pub variant: u32,
}

/// A slot's week from the local midnight of `monday`, in stretches, with the calendar.
pub fn week(
    rules: &TimeRules,
    variants: &HashMap<VariantKey, u32>,
    slot: u32,
    monday: Date,
) -> Vec<Stretch> {
    let minutes = rules.boundaries(&rules.slots[slot as usize]);
    let mut stretches: Vec<Stretch> = Vec::new();
    for offset in 0..7 {
        let Ok(date) = monday.checked_add(jiff::Span::new().days(offset)) else {
            continue;
        };
        for &minute in &minutes {
            let key = rules.key_at(
                slot,
                Moment {
                    date,
                    minute,
                    calendar: true,
                },
            );
            let variant = variants.get(&key).copied().unwrap_or(u32::MAX);
            let from = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
            if let Some(last) = stretches.last_mut() {
                last.to = from;
                if last.variant == variant {
                    continue;
                }
            }
            stretches.push(Stretch {
                from,
                to: from,
                variant,
            });
        }
    }
    if let Some(last) = stretches.last_mut() {
        last.to = monday
            .checked_add(jiff::Span::new().days(7))
            .unwrap_or(monday)
            .at(0, 0, 0, 0);
    }
    stretches
}

/// Rules that meet in a way whose outcome is probably not meant, for `check`: two rules open
/// at once that switch one place to different profiles (only one applies), or an open rule
/// blocking a table that the profile or another open rule allows (allow wins).
pub fn conflicts(rules: &TimeRules, names: &dyn Fn(u32) -> String) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let monday = Date::constant(2024, 1, 1);
    for slot in &rules.slots {
        let minutes = rules.boundaries(slot);
        for offset in 0..7 {
            let date = monday
                .checked_add(jiff::Span::new().days(offset))
                .unwrap_or(monday);
            for &minute in &minutes {
                let at = Moment {
                    date,
                    minute,
                    calendar: false,
                };
                let open: Vec<u32> = slot
                    .rules
                    .iter()
                    .chain(rules.profile_rules[slot.base as usize].iter())
                    .copied()
                    .filter(|&r| rules.rule_open(slot, r, at))
                    .collect();
                let switches: Vec<&TimeRule> = open
                    .iter()
                    .map(|&r| &rules.rules[r as usize])
                    .filter(|r| r.switch.is_some())
                    .collect();
                for pair in switches.windows(2) {
                    if pair[0].switch != pair[1].switch {
                        found.push(format!(
                            "{} and {} are open together on {} at {:02}:{:02} and switch to different profiles; only the first applies",
                            pair[0].origin,
                            pair[1].origin,
                            DAYS[offset as usize],
                            minute / 60,
                            minute % 60
                        ));
                    }
                }
                let allowed: Vec<u32> = open
                    .iter()
                    .flat_map(|&r| rules.rules[r as usize].allow.iter().copied())
                    .chain(slot.allow.iter().copied())
                    .collect();
                for &r in &open {
                    let rule = &rules.rules[r as usize];
                    for table in rule.block.iter().filter(|t| allowed.contains(t)) {
                        found.push(format!(
                            "{} blocks {} while it is also allowed there (allow wins)",
                            rule.origin,
                            names(*table)
                        ));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(days: u8, windows: &[(u16, u16)]) -> Schedule {
        Schedule {
            name: "s".into(),
            days,
            windows: windows.to_vec(),
            origin: "c.toml:1".into(),
        }
    }

    #[test]
    fn windows_past_midnight_belong_to_the_day_they_start() {
        // Sunday to Thursday nights, 22:00-06:00.
        let night = schedule(0b100_1111, &[(22 * 60, 6 * 60)]);
        let monday = Date::constant(2026, 12, 7);
        let sunday = Date::constant(2026, 12, 6);
        let saturday = Date::constant(2026, 12, 12);
        assert_eq!(night.open_at(monday, 5 * 60), Some(sunday));
        assert_eq!(night.open_at(monday, 23 * 60), Some(monday));
        assert_eq!(night.open_at(monday, 12 * 60), None);
        // Friday night is not listed: Saturday 05:00 is free.
        assert_eq!(night.open_at(saturday, 5 * 60), None);
    }

    #[test]
    fn calendar_days_bound_the_next_edge() {
        let entry = |name: &str, effect, first: Date, last: Date| CalendarEntry {
            name: name.into(),
            effect,
            schools: None,
            days: vec![(first, last)],
            origin: "c.toml:1".into(),
        };
        let mut rules = TimeRules {
            zones: vec![TimeZone::UTC],
            profile_rules: vec![Vec::new(), Vec::new()],
            slots: vec![Slot {
                base: 0,
                school: Some(0),
                exams: true,
                zone: 0,
                block: Vec::new(),
                allow: Vec::new(),
                rules: Vec::new(),
                exceptions: None,
            }],
            ..TimeRules::default()
        };
        // An exam Monday 7 to Friday 11 December; a holiday on Friday 11 as well.
        rules.set_calendar(vec![
            entry(
                "exam",
                CalendarEffect::Exam(1),
                Date::constant(2026, 12, 7),
                Date::constant(2026, 12, 11),
            ),
            entry(
                "holiday",
                CalendarEffect::Holiday(None),
                Date::constant(2026, 12, 11),
                Date::constant(2026, 12, 11),
            ),
        ]);
        let at = |text: &str| text.parse::<Timestamp>().unwrap().as_millisecond();
        let slot = rules.slots[0].clone();
        let mut cache = HashMap::new();
        // Wednesday noon: the next change is the holiday joining on Friday.
        assert_eq!(
            rules.next_edge(&slot, at("2026-12-09T12:00:00Z"), &mut cache),
            at("2026-12-11T00:00:00Z")
        );
        // Friday noon: both end at Saturday's midnight.
        assert_eq!(
            rules.next_edge(&slot, at("2026-12-11T12:00:00Z"), &mut cache),
            at("2026-12-12T00:00:00Z")
        );
        // Sunday before: the exam starts on Monday.
        assert_eq!(
            rules.next_edge(&slot, at("2026-12-06T12:00:00Z"), &mut cache),
            at("2026-12-07T00:00:00Z")
        );
        assert_eq!(
            rules.key_at_instant(0, at("2026-12-08T09:00:00Z")).profile,
            1,
            "the exam profile"
        );
        assert_eq!(
            rules.key_at_instant(0, at("2026-12-12T09:00:00Z")).profile,
            0
        );
        // Afterwards nothing changes any more.
        assert_eq!(
            rules.next_edge(&slot, at("2026-12-13T12:00:00Z"), &mut cache),
            i64::MAX
        );
    }

    #[test]
    fn next_edges_follow_the_zone() {
        let lessons = schedule(0b001_1111, &[(7 * 60, 11 * 60 + 30)]);
        let zone = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let sunday_noon: Timestamp = "2026-12-06T12:00:00+07:00".parse().unwrap();
        let edge = lessons
            .next_edge(&zone, sunday_noon.as_millisecond())
            .unwrap();
        let expected: Timestamp = "2026-12-07T07:00:00+07:00".parse().unwrap();
        assert_eq!(edge, expected.as_millisecond());
        let during: Timestamp = "2026-12-07T08:00:00+07:00".parse().unwrap();
        let closes: Timestamp = "2026-12-07T11:30:00+07:00".parse().unwrap();
        assert_eq!(
            lessons.next_edge(&zone, during.as_millisecond()),
            Some(closes.as_millisecond())
        );
    }
}
