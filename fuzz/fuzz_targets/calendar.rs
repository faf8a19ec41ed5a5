//! Any text as an imported iCal calendar: its events as day ranges, or an error, never a panic
//! (the parser is `icalendar`'s and recurrences are `rrule`'s; this covers our reading of
//! dates, durations and exclusions, and what those libraries do with hostile input).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let today = jiff::civil::date(2026, 12, 7);
    let zone = jiff::tz::TimeZone::UTC;
    if let Ok(events) = schooldns::calendar::ics::events(text, today, &zone) {
        for event in events {
            for (first, last) in event.days {
                assert!(first <= last, "{first} after {last}");
            }
        }
    }
});
