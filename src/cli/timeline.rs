//! What `check` prints about rules in time: each school's week (which rules are in force
//! when, with the calendar applied), and the warnings: schedules no rule uses, rules no place
//! ever applies, and rules that meet in conflicting ways.

use std::io::Write;

use jiff::civil::Date;

use crate::policy::Policy;
use crate::policy::time::{DAYS, Stretch};

/// A variant in words: its profile, and what switched it or what open rules add.
pub fn describe(policy: &Policy, variant: u32) -> String {
    if variant == u32::MAX {
        return "(not compiled)".into();
    }
    let summary = policy.summary(variant);
    let mut text = summary.profile.clone();
    if let Some(switched) = &summary.switched {
        text.push_str(&format!(" by {switched}"));
    }
    let names = |added: &[(String, String)]| {
        added
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !summary.added_blocks.is_empty() {
        text.push_str(&format!(" + block {}", names(&summary.added_blocks)));
    }
    if !summary.added_allows.is_empty() {
        text.push_str(&format!(" + allow {}", names(&summary.added_allows)));
    }
    let mut causes: Vec<&str> = summary
        .added_blocks
        .iter()
        .chain(&summary.added_allows)
        .map(|(_, c)| c.as_str())
        .collect();
    causes.dedup();
    if !causes.is_empty() {
        text.push_str(&format!(" — {}", causes.join("; ")));
    }
    text
}

/// One day's stretches as `07:00 name · 11:30 name`.
fn day_line(policy: &Policy, stretches: &[&Stretch]) -> String {
    stretches
        .iter()
        .map(|s| {
            format!(
                "{:02}:{:02} {}",
                s.from.hour(),
                s.from.minute(),
                describe(policy, s.variant)
            )
        })
        .collect::<Vec<_>>()
        .join("\n                 ")
}

/// Prints every school's week from `monday`, days with the same rules at the same times
/// folded together (`mon–fri`).
pub fn write_weeks(out: &mut dyn Write, policy: &Policy, monday: Date) -> std::io::Result<()> {
    if policy.time_rules().is_static() {
        return Ok(());
    }
    writeln!(out, "\nweek of {monday}, per school (with the calendar):")?;
    for school in policy.schools() {
        writeln!(out, "  {} — {}", school.id, school.name)?;
        let week = policy.week(school.slot, monday);
        let mut days: Vec<(usize, String)> = Vec::new();
        for (index, day) in (0..7).filter_map(|i| {
            monday
                .checked_add(jiff::Span::new().days(i))
                .ok()
                .map(|d| (i as usize, d))
        }) {
            // Stretches starting on this day, plus the one running into it.
            let mut on_day: Vec<&Stretch> = week.iter().filter(|s| s.from.date() == day).collect();
            if on_day
                .first()
                .is_none_or(|s| s.from.hour() != 0 || s.from.minute() != 0)
                && let Some(before) = week.iter().rev().find(|s| s.from.date() < day)
            {
                on_day.insert(0, before);
            }
            let mut line = day_line(policy, &on_day);
            if let Some(first) = on_day.first()
                && first.from.date() < day
            {
                line = line.replacen(
                    &format!("{:02}:{:02}", first.from.hour(), first.from.minute()),
                    "00:00",
                    1,
                );
            }
            days.push((index, line));
        }
        let mut i = 0;
        while i < days.len() {
            let mut j = i;
            while j + 1 < days.len() && days[j + 1].1 == days[i].1 {
                j += 1;
            }
            let label = if i == j {
                DAYS[days[i].0].to_string()
            } else {
                format!("{}–{}", DAYS[days[i].0], DAYS[days[j].0])
            };
            writeln!(out, "      {label:<9}  {}", days[i].1)?;
            i = j + 1;
        }
    }
    Ok(())
}

/// Warnings about rules in time: schedules no rule uses, rules of profiles no place uses, and
/// conflicting overlaps.
pub fn warnings(policy: &Policy) -> Vec<String> {
    let time = policy.time_rules();
    let mut found = Vec::new();
    for (index, schedule) in time.schedules.iter().enumerate() {
        if !time.rules.iter().any(|r| r.schedule == index as u32) {
            found.push(format!(
                "schedule {:?} ({}) is used by no `when` rule: it never switches anything",
                schedule.name, schedule.origin
            ));
        }
    }
    for (profile, rules) in time.profile_rules.iter().enumerate() {
        let used = time.slots.iter().any(|s| s.base == profile as u32)
            || time.calendar.iter().any(|e| {
                matches!(e.effect, crate::policy::time::CalendarEffect::Exam(p) if p == profile as u32)
            })
            || time.rules.iter().any(|r| r.switch == Some(profile as u32));
        if used {
            continue;
        }
        for &rule in rules {
            found.push(format!(
                "{} never applies: no school, subnet or device uses profile {:?}",
                time.rules[rule as usize].origin,
                policy.profile(profile as u32).name
            ));
        }
    }
    found.extend(crate::policy::time::conflicts(time, &|table| {
        policy.table_name(table).to_string()
    }));
    found
}
