//! Hit records, rankings and summaries as tables (terminal), CSV (what a school office opens in
//! a spreadsheet: UTF-8 with BOM, local time beside UTC, Vietnamese names intact) and JSON.

use std::collections::HashMap;
use std::io::{self, Write};

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::query::{SummaryRow, TopRow};
use super::record::HitRecord;
use super::time::{format_local, format_utc, zone_name};

/// School id → display name, from the config.
pub type SchoolNames = HashMap<String, String>;

/// The UTF-8 byte order mark: without it, spreadsheet programs read CSV as a legacy code page
/// and Vietnamese names turn into mojibake.
/// The byte-order mark spreadsheets need to read UTF-8 CSV.
pub const BOM: &str = "\u{feff}";

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with BOM.
    Csv,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Reads `table`, `csv` or `json`.
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            _ => return None,
        })
    }
}

/// One record as a JSON object.
pub fn record_value(r: &HitRecord, zone: &TimeZone, schools: Option<&SchoolNames>) -> Value {
    let school_name = r
        .school
        .as_ref()
        .and_then(|id| schools.and_then(|s| s.get(id)));
    json!({
        "id": r.id,
        "time": format_utc(r.time_ms),
        "time_local": format_local(r.time_ms, zone),
        "last_seen": format_utc(r.last_seen_ms),
        "count": r.count,
        "school": r.school,
        "school_name": school_name,
        "device": r.device,
        "profile": r.profile,
        "client": r.client,
        "protocol": r.protocol,
        "qname": r.qname,
        "qtype": r.qtype,
        "decision": r.decision,
        "category": r.category,
        "service": r.service,
        "list": r.list,
        "line": r.line,
        "entry": r.entry,
        "cname": r.cname,
        "policy_version": r.policy_version,
        "instance": r.instance,
    })
}

/// One record as one line of JSON.
pub fn record_json(r: &HitRecord, zone: &TimeZone, schools: Option<&SchoolNames>) -> String {
    record_value(r, zone, schools).to_string()
}

const CSV_HEADER: [&str; 21] = [
    "time_local",
    "time_utc",
    "last_seen_utc",
    "count",
    "school",
    "school_name",
    "device",
    "profile",
    "client",
    "protocol",
    "qname",
    "qtype",
    "decision",
    "category",
    "list",
    "line",
    "entry",
    "cname",
    "policy_version",
    "service",
    "instance",
];

/// [`CSV_HEADER`] in Vietnamese, for exports from the console in Vietnamese.
const CSV_HEADER_VI: [&str; 21] = [
    "thoi_gian_dia_phuong",
    "thoi_gian_utc",
    "lan_cuoi_utc",
    "so_lan",
    "truong",
    "ten_truong",
    "thiet_bi",
    "ho_so",
    "may",
    "giao_thuc",
    "ten_mien",
    "loai_truy_van",
    "quyet_dinh",
    "nhom",
    "danh_sach",
    "dong",
    "muc",
    "cname",
    "phien_ban_chinh_sach",
    "dich_vu",
    "may_chu_dns",
];

/// A CSV field: quoted when needed, and defused when a spreadsheet would read it as a formula.
fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// Writes one CSV line (CRLF-terminated, fields quoted and defused as needed).
pub fn csv_line(out: &mut dyn Write, fields: &[String]) -> io::Result<()> {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    write!(out, "{}\r\n", line.join(","))
}

/// The CSV header row: `time_local (<zone>)`, then UTC and the record's fields.
pub fn csv_header(zone: &TimeZone) -> Vec<String> {
    csv_header_in(zone, false)
}

/// The CSV header in English, or in Vietnamese (`vietnamese`): the columns are the same.
pub fn csv_header_in(zone: &TimeZone, vietnamese: bool) -> Vec<String> {
    let names = if vietnamese {
        &CSV_HEADER_VI
    } else {
        &CSV_HEADER
    };
    let mut header: Vec<String> = names.iter().map(|h| h.to_string()).collect();
    header[0] = format!("{} ({})", names[0], zone_name(zone));
    header
}

/// One record's CSV fields, in [`csv_header`]'s order.
pub fn csv_fields(r: &HitRecord, zone: &TimeZone, schools: &SchoolNames) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        format_local(r.time_ms, zone),
        format_utc(r.time_ms),
        format_utc(r.last_seen_ms),
        r.count.to_string(),
        opt(&r.school),
        r.school
            .as_ref()
            .and_then(|s| schools.get(s))
            .cloned()
            .unwrap_or_default(),
        opt(&r.device),
        opt(&r.profile),
        opt(&r.client),
        r.protocol.clone(),
        r.qname.clone(),
        r.qtype.clone(),
        r.decision.clone(),
        r.category.clone(),
        opt(&r.list),
        r.line.map(|l| l.to_string()).unwrap_or_default(),
        opt(&r.entry),
        opt(&r.cname),
        r.policy_version.clone(),
        opt(&r.service),
        opt(&r.instance),
    ]
}

/// Writes records in `format`.
pub fn write_records(
    out: &mut dyn Write,
    format: Format,
    records: &[HitRecord],
    zone: &TimeZone,
    schools: &SchoolNames,
) -> io::Result<()> {
    match format {
        Format::Json => {
            for r in records {
                writeln!(out, "{}", record_json(r, zone, Some(schools)))?;
            }
        }
        Format::Csv => {
            out.write_all(BOM.as_bytes())?;
            csv_line(out, &csv_header(zone))?;
            for r in records {
                csv_line(out, &csv_fields(r, zone, schools))?;
            }
        }
        Format::Table => {
            let rows: Vec<[String; 7]> = records
                .iter()
                .map(|r| {
                    let rule = match (&r.list, r.line) {
                        (Some(list), Some(line)) => {
                            format!("{list}:{line} {}", r.entry.as_deref().unwrap_or(""))
                        }
                        _ => r.entry.clone().unwrap_or_default(),
                    };
                    [
                        format_local(r.time_ms, zone),
                        r.school.clone().or(r.device.clone()).unwrap_or_default(),
                        r.client.clone().unwrap_or_else(|| "-".into()),
                        r.qname.clone(),
                        r.category.clone(),
                        r.count.to_string(),
                        rule,
                    ]
                })
                .collect();
            let header = [
                format!("time ({})", zone_name(zone)),
                "school".into(),
                "client".into(),
                "name".into(),
                "category".into(),
                "count".into(),
                "rule".into(),
            ];
            write_table(out, &header, &rows)?;
        }
    }
    Ok(())
}

/// Writes a ranking in `format`; `what` names the ranked column.
pub fn write_top(
    out: &mut dyn Write,
    format: Format,
    what: &str,
    rows: &[TopRow],
) -> io::Result<()> {
    match format {
        Format::Json => {
            for r in rows {
                writeln!(
                    out,
                    "{}",
                    json!({ what: r.key, "hits": r.hits, "records": r.records })
                )?;
            }
            Ok(())
        }
        Format::Csv => {
            out.write_all(BOM.as_bytes())?;
            csv_line(out, &[what.into(), "hits".into(), "records".into()])?;
            for r in rows {
                csv_line(
                    out,
                    &[
                        r.key.clone().unwrap_or_default(),
                        r.hits.to_string(),
                        r.records.to_string(),
                    ],
                )?;
            }
            Ok(())
        }
        Format::Table => {
            let table: Vec<[String; 3]> = rows
                .iter()
                .map(|r| {
                    [
                        r.key.clone().unwrap_or_else(|| "-".into()),
                        r.hits.to_string(),
                        r.records.to_string(),
                    ]
                })
                .collect();
            write_table(out, &[what.into(), "hits".into(), "records".into()], &table)
        }
    }
}

/// Writes a per-day summary in `format`.
pub fn write_summary(out: &mut dyn Write, format: Format, rows: &[SummaryRow]) -> io::Result<()> {
    match format {
        Format::Json => {
            for r in rows {
                writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())?;
            }
            Ok(())
        }
        Format::Csv => {
            out.write_all(BOM.as_bytes())?;
            let header = ["day", "school", "category", "hits", "records"];
            csv_line(out, &header.map(String::from))?;
            for r in rows {
                csv_line(
                    out,
                    &[
                        r.day.clone(),
                        r.school.clone().unwrap_or_default(),
                        r.category.clone(),
                        r.hits.to_string(),
                        r.records.to_string(),
                    ],
                )?;
            }
            Ok(())
        }
        Format::Table => {
            let table: Vec<[String; 5]> = rows
                .iter()
                .map(|r| {
                    [
                        r.day.clone(),
                        r.school.clone().unwrap_or_else(|| "-".into()),
                        r.category.clone(),
                        r.hits.to_string(),
                        r.records.to_string(),
                    ]
                })
                .collect();
            let header = ["day", "school", "category", "hits", "records"].map(String::from);
            write_table(out, &header, &table)
        }
    }
}

fn write_table<const N: usize>(
    out: &mut dyn Write,
    header: &[String; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths: [usize; N] = std::array::from_fn(|i| header[i].chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String; N]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            text.push_str(cell);
            if i + 1 < N {
                text.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header)?;
    for row in rows {
        line(out, row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(
            csv_field("Trường Tiểu học Kim Đồng"),
            "Trường Tiểu học Kim Đồng"
        );
    }
}
