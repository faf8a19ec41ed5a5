//! Times as readers write and read them: `--since 24h`, `2026-11-01`, RFC 3339; UTC stamps
//! with milliseconds; local times and days in the district's time zone (`[hitlog] timezone`).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::config::HitlogConfig;

/// The configured time zone, or the system's.
pub fn zone(config: &HitlogConfig) -> TimeZone {
    config
        .timezone
        .as_ref()
        .and_then(|z| TimeZone::get(z.get_ref()).ok())
        .unwrap_or_else(TimeZone::system)
}

/// Parses a point in time, as milliseconds since the Unix epoch:
/// - a duration back from `now_ms`: `90s`, `30m`, `24h`, `7d`, `2w`;
/// - a local date (midnight in `zone`): `2026-11-01`;
/// - a local date and time: `2026-11-01T08:00` or `2026-11-01 08:00:30`;
/// - an RFC 3339 instant: `2026-11-01T01:00:00Z`, `2026-11-01T08:00:00+07:00`;
/// - `now`.
pub fn parse_instant(text: &str, zone: &TimeZone, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_ms);
    }
    if let Some(ms) = parse_ago(text) {
        return Ok(now_ms - ms);
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil = if text.contains(':') {
        text.replace(' ', "T").parse::<DateTime>().ok()
    } else {
        text.parse::<Date>()
            .ok()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    };
    match civil.map(|dt| dt.to_zoned(zone.clone())) {
        Some(Ok(zoned)) => Ok(zoned.timestamp().as_millisecond()),
        _ => Err(format!(
            "cannot read `{text}` as a time: use e.g. 24h, 7d, 2026-11-01, 2026-11-01T08:00 or \
             2026-11-01T01:00:00Z"
        )),
    }
}

fn parse_ago(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    (number >= 0).then(|| number.saturating_mul(ms))
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `2026-11-22T05:31:20.123Z`.
pub fn format_utc(ms: i64) -> String {
    timestamp(ms).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `2026-11-22 12:31:20` in `zone`: what a spreadsheet reads as a date and time.
pub fn format_local(ms: i64, zone: &TimeZone) -> String {
    Zoned::new(timestamp(ms), zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The local date of an instant in `zone`.
pub fn local_date(ms: i64, zone: &TimeZone) -> Date {
    Zoned::new(timestamp(ms), zone.clone()).date()
}

/// The zone's name, for output headers (`Asia/Ho_Chi_Minh`, or `UTC+07:00` when unnamed).
pub fn zone_name(zone: &TimeZone) -> String {
    zone.iana_name().map_or_else(
        || format!("UTC{}", zone.to_offset(Timestamp::now())),
        str::to_string,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_spellings_parse() {
        let hcm = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let now = parse_instant("2026-11-22T05:00:00Z", &hcm, 0).unwrap();
        assert_eq!(parse_instant("24h", &hcm, now).unwrap(), now - 86_400_000);
        assert_eq!(
            parse_instant("7d", &hcm, now).unwrap(),
            now - 7 * 86_400_000
        );
        assert_eq!(parse_instant("30m", &hcm, now).unwrap(), now - 1_800_000);
        assert_eq!(parse_instant("now", &hcm, now).unwrap(), now);
        // Local midnight in Hanoi is 17:00 UTC the day before.
        let day = parse_instant("2026-11-01", &hcm, now).unwrap();
        assert_eq!(format_utc(day), "2026-10-31T17:00:00.000Z");
        let morning = parse_instant("2026-11-01 08:00", &hcm, now).unwrap();
        assert_eq!(format_utc(morning), "2026-11-01T01:00:00.000Z");
        let offset = parse_instant("2026-11-01T08:00:00+07:00", &hcm, now).unwrap();
        assert_eq!(offset, morning);
        assert!(parse_instant("yesterday", &hcm, now).is_err());
        assert!(parse_instant("-5h", &hcm, now).is_err());
    }

    #[test]
    fn local_columns() {
        let hcm = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let ms = parse_instant("2026-11-21T18:30:00.250Z", &hcm, 0).unwrap();
        assert_eq!(format_utc(ms), "2026-11-21T18:30:00.250Z");
        assert_eq!(format_local(ms, &hcm), "2026-11-22 01:30:00");
        assert_eq!(local_date(ms, &hcm).to_string(), "2026-11-22");
        assert_eq!(zone_name(&hcm), "Asia/Ho_Chi_Minh");
    }
}
