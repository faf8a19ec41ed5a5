//! iCal (`.ics`, RFC 5545) events as day ranges: what a province's or a school's published
//! exam calendar says, read with `icalendar`'s parser and expanded with `rrule`.
//!
//! Only days matter here (an exam day switches a school's profile for the whole day), so each
//! occurrence becomes the local days it touches: an all-day event from its start date up to
//! the day before its end date; a timed event from its start date to the date its end falls
//! on. Times are read as written in the event's own zone (`TZID`); UTC times (`Z`) as local
//! times in the district's zone. Recurrences (`RRULE`, `RDATE`, `EXDATE`) are expanded from a
//! year before `today` to two years after it, at most [`MAX_OCCURRENCES`] per event.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// Occurrences taken from one recurring event.
pub const MAX_OCCURRENCES: u16 = 1000;

/// One event (all its occurrences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `UID`, or the summary when there is none.
    pub uid: String,
    /// `SUMMARY`.
    pub summary: String,
    /// The days of its occurrences, first and last included, in order.
    pub days: Vec<(Date, Date)>,
}

/// A `DTSTART`/`DTEND` value: a date (all-day) or a local date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Day(Date),
    At(DateTime),
}

impl When {
    fn civil(self) -> DateTime {
        match self {
            When::Day(d) => d.at(0, 0, 0, 0),
            When::At(t) => t,
        }
    }
}

/// Reads every event of an iCal text; cancelled events are left out. `zone` reads UTC times.
pub fn events(text: &str, today: Date, zone: &TimeZone) -> Result<Vec<Event>, String> {
    let unfolded = icalendar::parser::unfold(text);
    let calendar = icalendar::parser::read_calendar(&unfolded)
        .map_err(|e| format!("not an iCal calendar: {}", e.lines().next().unwrap_or("")))?;
    let mut found = Vec::new();
    let mut stack: Vec<&icalendar::parser::Component<'_>> = calendar.components.iter().collect();
    while let Some(component) = stack.pop() {
        stack.extend(component.components.iter());
        if component.name.as_str().eq_ignore_ascii_case("VEVENT") {
            found.push(component);
        }
    }
    // `stack` visits in reverse; keep the file's order.
    found.reverse();
    let mut events = Vec::new();
    for component in found {
        if let Some(event) = event(component, today, zone)? {
            events.push(event);
        }
    }
    Ok(events)
}

fn property<'a>(
    component: &'a icalendar::parser::Component<'_>,
    name: &str,
) -> Option<&'a icalendar::parser::Property<'a>> {
    component
        .properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn event(
    component: &icalendar::parser::Component<'_>,
    today: Date,
    zone: &TimeZone,
) -> Result<Option<Event>, String> {
    let text = |name: &str| property(component, name).map(|p| p.val.as_str().trim().to_string());
    let summary = text("SUMMARY").unwrap_or_default();
    let uid = text("UID").unwrap_or_else(|| summary.clone());
    if text("STATUS").is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED")) {
        return Ok(None);
    }
    let named = |what: &str| format!("event {uid:?}: {what}");
    let start = text("DTSTART").ok_or_else(|| named("no DTSTART"))?;
    let start = when(&start, zone)
        .ok_or_else(|| named(&format!("DTSTART {start:?} is not a date or time")))?;
    let end = match (text("DTEND"), text("DURATION")) {
        (Some(end), _) => when(&end, zone)
            .ok_or_else(|| named(&format!("DTEND {end:?} is not a date or time")))?,
        (None, Some(duration)) => {
            let span: jiff::Span = duration
                .parse()
                .map_err(|_| named(&format!("DURATION {duration:?} is not a duration")))?;
            let end = start
                .civil()
                .checked_add(span)
                .map_err(|_| named("DURATION out of range"))?;
            match start {
                When::Day(_) => When::Day(end.date()),
                When::At(_) => When::At(end),
            }
        }
        (None, None) => match start {
            When::Day(d) => When::Day(d.tomorrow().map_err(|_| named("date out of range"))?),
            When::At(t) => When::At(t),
        },
    };
    let length = end
        .civil()
        .since(start.civil())
        .map_err(|_| named("end out of range"))?;
    let occurrences = occurrences(component, start, today, zone).map_err(|e| named(&e))?;
    let mut days = Vec::with_capacity(occurrences.len());
    for first in occurrences {
        let end = first
            .checked_add(length)
            .map_err(|_| named("end out of range"))?;
        let last = match start {
            // All-day: DTEND is the day after the last.
            When::Day(_) => end
                .date()
                .yesterday()
                .unwrap_or(end.date())
                .max(first.date()),
            // Timed: an end at midnight does not touch that day.
            When::At(_) if end.time() == jiff::civil::Time::midnight() && end > first => {
                end.date().yesterday().unwrap_or(end.date())
            }
            When::At(_) => end.date(),
        };
        days.push((first.date(), last.max(first.date())));
    }
    Ok(Some(Event { uid, summary, days }))
}

/// A `DTSTART`-style value: `20261221` or `20261221T073000`, with `Z` read in `zone`.
fn when(value: &str, zone: &TimeZone) -> Option<When> {
    let value = value.trim();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let date = |s: &str| -> Option<Date> {
        if s.len() != 8 || !digits(s) {
            return None;
        }
        Date::new(
            s[0..4].parse().ok()?,
            s[4..6].parse().ok()?,
            s[6..8].parse().ok()?,
        )
        .ok()
    };
    if let Some(day) = date(value) {
        return Some(When::Day(day));
    }
    let (day, time) = value.split_once(['T', 't'])?;
    let (time, utc) = match time.strip_suffix(['Z', 'z']) {
        Some(t) => (t, true),
        None => (time, false),
    };
    if time.len() != 6 || !digits(time) {
        return None;
    }
    let time = jiff::civil::Time::new(
        time[0..2].parse().ok()?,
        time[2..4].parse().ok()?,
        time[4..6].parse().ok()?,
        0,
    )
    .ok()?;
    let civil = date(day)?.to_datetime(time);
    if !utc {
        return Some(When::At(civil));
    }
    let instant = civil.to_zoned(TimeZone::UTC).ok()?.timestamp();
    Some(When::At(instant.to_zoned(zone.clone()).datetime()))
}

/// The start of every occurrence, as local date-times.
fn occurrences(
    component: &icalendar::parser::Component<'_>,
    start: When,
    today: Date,
    zone: &TimeZone,
) -> Result<Vec<DateTime>, String> {
    let rules: Vec<String> = component
        .properties
        .iter()
        .filter(|p| p.name.as_str().eq_ignore_ascii_case("RRULE"))
        .map(|p| p.val.as_str().trim().to_string())
        .collect();
    let listed = |name: &str| -> Vec<DateTime> {
        component
            .properties
            .iter()
            .filter(|p| p.name.as_str().eq_ignore_ascii_case(name))
            .flat_map(|p| {
                p.val
                    .as_str()
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|v| when(&v, zone).map(When::civil))
            .collect()
    };
    let (extra, excluded) = (listed("RDATE"), listed("EXDATE"));
    let first = start.civil();
    let mut all = Vec::new();
    if rules.is_empty() {
        all.push(first);
    } else {
        // Expanded as if the local times were UTC: recurrence is civil (the 08:00 exam stays
        // at 08:00 across a DST change), and the result is read back as local again.
        let stamp = |t: DateTime| t.strftime("%Y%m%dT%H%M%SZ").to_string();
        let mut spec = format!("DTSTART:{}\n", stamp(first));
        for rule in &rules {
            let rule = rule
                .split(';')
                .map(|part| match part.split_once('=') {
                    Some((key, value)) if key.eq_ignore_ascii_case("UNTIL") => {
                        let until = when(value, zone)
                            .map(|w| match w {
                                When::Day(d) => d.at(23, 59, 59, 0),
                                When::At(t) => t,
                            })
                            .map_or_else(|| value.to_string(), stamp);
                        format!("UNTIL={until}")
                    }
                    _ => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join(";");
            spec.push_str(&format!("RRULE:{rule}\n"));
        }
        // RFC 5545 rules are ASCII; `rrule` slices weekdays by bytes and panics inside a
        // multi-byte character (found by the `calendar` fuzz target), so others stop here.
        if !spec.is_ascii() {
            return Err(
                "RRULE: only ASCII letters, digits and punctuation belong in a rule".into(),
            );
        }
        let set: rrule::RRuleSet = spec.trim_end().parse().map_err(|e| format!("RRULE: {e}"))?;
        let bound = |date: Date| -> Result<chrono::DateTime<rrule::Tz>, String> {
            let text = format!("{}T00:00:00Z", date);
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&rrule::Tz::UTC))
                .map_err(|e| e.to_string())
        };
        let after = today
            .checked_sub(jiff::Span::new().years(1))
            .unwrap_or(today);
        let before = today
            .checked_add(jiff::Span::new().years(2))
            .unwrap_or(today);
        let result = set
            .after(bound(after)?)
            .before(bound(before)?)
            .all(MAX_OCCURRENCES);
        for date in result.dates {
            let text = date.format("%Y-%m-%dT%H:%M:%S").to_string();
            if let Ok(civil) = text.parse::<DateTime>() {
                all.push(civil);
            }
        }
    }
    all.extend(extra);
    all.retain(|t| !excluded.contains(t));
    all.sort();
    all.dedup();
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//So GD//Lich thi//VI\r\n\
BEGIN:VEVENT\r\nUID:hk1@sogd\r\nSUMMARY:Thi học kỳ I\r\nDTSTART;VALUE=DATE:20261221\r\n\
DTEND;VALUE=DATE:20261224\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-test@sogd\r\nSUMMARY:Kiểm tra 15 phút\r\n\
DTSTART;TZID=Asia/Ho_Chi_Minh:20261207T073000\r\nDTEND;TZID=Asia/Ho_Chi_Minh:20261207T0\r\n 81500\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\nEXDATE;TZID=Asia/Ho_Chi_Minh:20261214T073000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:gone@sogd\r\nSUMMARY:Huỷ\r\nSTATUS:CANCELLED\r\nDTSTART;VALUE=DATE:20261225\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn all_day_ranges_recurrences_and_exclusions() {
        let zone = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let events = events(EXAMS, day("2026-12-01"), &zone).unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].summary, "Thi học kỳ I");
        assert_eq!(events[0].days, vec![(day("2026-12-21"), day("2026-12-23"))]);
        // Four Mondays from 7 December, the 14th excluded; the folded DTEND line is read.
        let mondays: Vec<Date> = events[1].days.iter().map(|d| d.0).collect();
        assert_eq!(
            mondays,
            vec![day("2026-12-07"), day("2026-12-21"), day("2026-12-28")]
        );
        assert!(events[1].days.iter().all(|(a, b)| a == b));
    }

    #[test]
    fn bad_calendars_say_why() {
        let zone = TimeZone::UTC;
        assert!(events("hello", day("2026-12-01"), &zone).is_err());
        let no_start =
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n";
        let err = events(no_start, day("2026-12-01"), &zone).unwrap_err();
        assert!(err.contains("DTSTART"), "{err}");
        // A time of 07:29:99 is not a time (found by the calendar fuzz target).
        let bad_time = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20261201T072999\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(
            events(bad_time, day("2026-12-01"), &zone)
                .unwrap_err()
                .contains("DTSTART")
        );
        let bad_rule = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20261201T080000\nRRULE:FREQ=SOMETIMES\nEND:VEVENT\nEND:VCALENDAR\n";
        let err = events(bad_rule, day("2026-12-01"), &zone).unwrap_err();
        assert!(err.contains("RRULE"), "{err}");
        // A weekday ending inside a multi-byte character made `rrule` panic (found by the
        // calendar fuzz target): refused as a bad rule instead.
        let wide = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20261201T080000\nRRULE:FREQ=WEEKLY;BYDAY=WEE:r052\u{2a8}E;COUNT=1\nEND:VEVENT\nEND:VCALENDAR\n";
        let err = events(wide, day("2026-12-01"), &zone).unwrap_err();
        assert!(err.contains("RRULE"), "{err}");
    }
}
