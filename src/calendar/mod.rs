//! The exam calendar and holidays: the `[calendar] file` admins write, and the iCal (`.ics`)
//! files or URLs it imports.
//!
//! An exam entry switches the schools it names (all of them when it names none) to an exam
//! profile for whole days; a holiday switches schedules off (all of them, or those it names)
//! for whole days. Days are local days in each school's time zone. Everything is read and
//! checked here against the config (schools, profiles and schedules must exist) and every
//! mistake names the calendar file, line and key; `policy::compile` turns the entries into
//! time rules.

pub mod ics;

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, ConfigError, SourceText};

/// The calendar file as admins write it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    /// Exam days: the named schools use `profile` on these days.
    #[serde(default)]
    pub exams: Vec<ExamConfig>,
    /// Holidays: the named schedules are off on these days.
    #[serde(default)]
    pub holidays: Vec<HolidayConfig>,
    /// iCal calendars whose events are exam days or holidays.
    #[serde(default)]
    pub imports: Vec<ImportConfig>,
}

/// `[[exams]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamConfig {
    /// Shown in `explain`, `check` and the console.
    pub name: String,
    /// First day (`2026-12-21`, quoted or not).
    pub from: Spanned<toml::Value>,
    /// Last day, included; default `from`.
    #[serde(default)]
    pub to: Option<Spanned<toml::Value>>,
    /// Schools (ids) that sit the exam; absent: every school.
    #[serde(default)]
    pub schools: Option<Vec<Spanned<String>>>,
    /// The profile those schools use on these days.
    pub profile: Spanned<String>,
}

/// `[[holidays]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayConfig {
    /// Shown in `explain`, `check` and the console.
    pub name: String,
    /// First day.
    pub from: Spanned<toml::Value>,
    /// Last day, included; default `from`.
    #[serde(default)]
    pub to: Option<Spanned<toml::Value>>,
    /// Schools (ids) on holiday; absent: every school and every device.
    #[serde(default)]
    pub schools: Option<Vec<Spanned<String>>>,
    /// Schedules switched off; absent: every schedule.
    #[serde(default)]
    pub schedules: Option<Vec<Spanned<String>>>,
}

/// `[[imports]]`: an iCal calendar, every event (or those whose summary contains `summary`)
/// an exam or a holiday.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// A file path or an `https://` URL (downloaded beside the query path like list
    /// subscriptions, and read from `[subscriptions] cache_dir`).
    pub source: Spanned<String>,
    /// `exam` or `holiday`.
    pub kind: Spanned<String>,
    /// For exams: the profile.
    #[serde(default)]
    pub profile: Option<Spanned<String>>,
    /// Schools (ids); absent: every school.
    #[serde(default)]
    pub schools: Option<Vec<Spanned<String>>>,
    /// For holidays: the schedules switched off; absent: every schedule.
    #[serde(default)]
    pub schedules: Option<Vec<Spanned<String>>>,
    /// Only events whose summary contains this text (case-insensitive).
    #[serde(default)]
    pub summary: Option<String>,
}

/// What an entry does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The schools use this profile.
    Exam {
        /// Profile name.
        profile: String,
    },
    /// These schedules (all when `None`) are off.
    Holiday {
        /// Schedule names.
        schedules: Option<Vec<String>>,
    },
}

/// One exam or holiday, checked, over one or more day ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Its name (an event's summary for imports).
    pub name: String,
    /// What it does.
    pub effect: Effect,
    /// Schools (ids) it applies to; `None`: all.
    pub schools: Option<Vec<String>>,
    /// Day ranges, first and last day included.
    pub days: Vec<(Date, Date)>,
    /// Where it was written: `config/calendar.toml:12`, or the imported file and event.
    pub origin: String,
    /// Its table in the calendar file (`exams` or `holidays`, and its index there); `None`
    /// for an imported event.
    pub place: Option<(&'static str, usize)>,
}

impl Entry {
    /// Whether it applies on `date`.
    pub fn covers(&self, date: Date) -> bool {
        self.days
            .iter()
            .any(|&(first, last)| first <= date && date <= last)
    }

    /// Whether it applies to the school with this id (`None`: a device without a school,
    /// which only district-wide entries reach).
    pub fn applies_to(&self, school: Option<&str>) -> bool {
        match (&self.schools, school) {
            (None, _) => true,
            (Some(ids), Some(id)) => ids.iter().any(|s| s == id),
            (Some(_), None) => false,
        }
    }
}

/// The whole calendar: the file's entries and the imported events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Every entry, in file order, imports after the file's own.
    pub entries: Vec<Entry>,
    /// The iCal files read (for `check` and the reload watcher).
    pub imported: Vec<PathBuf>,
}

/// Reads and checks the calendar file of `config`; no `[calendar] file`, or no such file yet:
/// an empty calendar.
pub fn read(config: &Config) -> Result<Calendar, ConfigError> {
    let Some(path) = &config.calendar.file else {
        return Ok(Calendar::default());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // The console makes it with its first entry.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(path = %path.display(), "no calendar file yet: an empty calendar");
            String::new()
        }
        Err(e) => {
            return Err(ConfigError::unreadable(path, "the calendar file", &e));
        }
    };
    parse(path, text, config)
}

/// The `https://` sources of the calendar's imports (for the subscription refresher).
pub fn import_urls(config: &Config) -> Vec<String> {
    let Some(path) = &config.calendar.file else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(file) = toml::from_str::<CalendarFile>(&text) else {
        return Vec::new();
    };
    file.imports
        .into_iter()
        .map(|i| i.source.into_inner())
        .filter(|s| is_url(s))
        .collect()
}

fn is_url(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// Parses calendar text that claims to come from `path`, checking it against `config`.
pub fn parse(path: &Path, text: String, config: &Config) -> Result<Calendar, ConfigError> {
    let source = SourceText::new(path, text);
    let file: CalendarFile = toml::from_str(&source.text).map_err(|e| source.from_toml(&e))?;
    let check = Checker {
        source: &source,
        config,
    };
    let mut calendar = Calendar::default();
    let line_of = |span: std::ops::Range<usize>| source.locate(span.start).0;
    for (i, exam) in file.exams.iter().enumerate() {
        let key = format!("exams[{i}]");
        check.profile(&exam.profile, &format!("{key}.profile"))?;
        calendar.entries.push(Entry {
            name: exam.name.clone(),
            effect: Effect::Exam {
                profile: exam.profile.get_ref().clone(),
            },
            schools: check.schools(exam.schools.as_deref(), &format!("{key}.schools"))?,
            days: vec![check.range(&exam.from, exam.to.as_ref(), &key)?],
            origin: format!("{}:{}", path.display(), line_of(exam.from.span())),
            place: Some(("exams", i)),
        });
    }
    for (i, holiday) in file.holidays.iter().enumerate() {
        let key = format!("holidays[{i}]");
        calendar.entries.push(Entry {
            name: holiday.name.clone(),
            effect: Effect::Holiday {
                schedules: check
                    .schedules(holiday.schedules.as_deref(), &format!("{key}.schedules"))?,
            },
            schools: check.schools(holiday.schools.as_deref(), &format!("{key}.schools"))?,
            days: vec![check.range(&holiday.from, holiday.to.as_ref(), &key)?],
            origin: format!("{}:{}", path.display(), line_of(holiday.from.span())),
            place: Some(("holidays", i)),
        });
    }
    for (i, import) in file.imports.iter().enumerate() {
        let key = format!("imports[{i}]");
        let effect = match import.kind.get_ref().as_str() {
            "exam" => {
                let Some(profile) = &import.profile else {
                    return Err(source.error_at(
                        import.kind.span(),
                        &format!("{key}.profile"),
                        "an exam import needs the profile its schools use on those days",
                    ));
                };
                check.profile(profile, &format!("{key}.profile"))?;
                Effect::Exam {
                    profile: profile.get_ref().clone(),
                }
            }
            "holiday" => Effect::Holiday {
                schedules: check
                    .schedules(import.schedules.as_deref(), &format!("{key}.schedules"))?,
            },
            other => {
                return Err(source.error_at(
                    import.kind.span(),
                    &format!("{key}.kind"),
                    format!("{other:?} is not \"exam\" or \"holiday\""),
                ));
            }
        };
        let schools = check.schools(import.schools.as_deref(), &format!("{key}.schools"))?;
        let location = import.source.get_ref();
        let ics_path = if is_url(location) {
            crate::subscriptions::cached_path(&config.subscriptions.cache_dir, location)
        } else {
            PathBuf::from(location)
        };
        let text = match std::fs::read_to_string(&ics_path) {
            Ok(text) => text,
            Err(_) if is_url(location) => {
                tracing::warn!(url = %location, "no downloaded copy of this calendar yet");
                continue;
            }
            Err(e) => {
                return Err(source.error_at(
                    import.source.span(),
                    &format!("{key}.source"),
                    format!("cannot read {}: {e}", ics_path.display()),
                ));
            }
        };
        let today = jiff::Timestamp::from_millisecond(crate::clock::now_ms())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let zone = crate::hitlog::time::zone(&config.hitlog);
        let events = ics::events(&text, today, &zone).map_err(|e| {
            source.error_at(
                import.source.span(),
                &format!("{key}.source"),
                format!("{location}: {e}"),
            )
        })?;
        let wanted = import.summary.as_ref().map(|s| s.to_lowercase());
        for event in events {
            if wanted
                .as_ref()
                .is_some_and(|w| !event.summary.to_lowercase().contains(w))
            {
                continue;
            }
            calendar.entries.push(Entry {
                name: event.summary,
                effect: effect.clone(),
                schools: schools.clone(),
                days: event.days,
                origin: format!("{location} (event {})", event.uid),
                place: None,
            });
        }
        calendar.imported.push(ics_path);
    }
    Ok(calendar)
}

/// An exam day or holiday the console adds to the calendar file.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its name.
    pub name: String,
    /// First and last day.
    pub from: Date,
    /// Last day, included.
    pub to: Date,
    /// School ids; `None`: all.
    pub schools: Option<Vec<String>>,
    /// What it does.
    pub effect: Effect,
}

const NEW_CALENDAR: &str =
    "# Exam days and holidays (`[calendar] file`); the web console adds and removes entries.\n";

/// Adds an entry to the calendar file (made if missing), checked against `config` as the
/// policy would read it; locked and replaced atomically, comments kept.
pub fn add_entry(path: &Path, config: &Config, new: &NewEntry) -> anyhow::Result<()> {
    edit_file(path, config, |doc| {
        let mut table = toml_edit::Table::new();
        table["name"] = toml_edit::value(new.name.as_str());
        let date = |d: Date| -> anyhow::Result<toml_edit::Item> {
            Ok(toml_edit::value(
                d.to_string().parse::<toml_edit::Datetime>()?,
            ))
        };
        table["from"] = date(new.from)?;
        if new.to != new.from {
            table["to"] = date(new.to)?;
        }
        if let Some(schools) = &new.schools {
            table["schools"] = toml_edit::value(schools.iter().collect::<toml_edit::Array>());
        }
        let key = match &new.effect {
            Effect::Exam { profile } => {
                table["profile"] = toml_edit::value(profile.as_str());
                "exams"
            }
            Effect::Holiday { schedules } => {
                if let Some(schedules) = schedules {
                    table["schedules"] =
                        toml_edit::value(schedules.iter().collect::<toml_edit::Array>());
                }
                "holidays"
            }
        };
        crate::files::tables(doc, key)?.push(table);
        Ok(())
    })
}

/// Removes the entry at `index` of `[[exams]]` or `[[holidays]]`, if it still has `name`
/// (another admin's edit in between is refused rather than removing the wrong day).
pub fn remove_entry(
    path: &Path,
    config: &Config,
    table: &str,
    index: usize,
    name: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        table == "exams" || table == "holidays",
        "no calendar table {table:?}"
    );
    edit_file(path, config, |doc| {
        let entries = crate::files::tables(doc, table)?;
        let found = entries
            .get(index)
            .and_then(|t| t.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        anyhow::ensure!(
            found.as_deref() == Some(name),
            "the calendar changed meanwhile: entry {index} of {table} is not {name:?}; reload the page"
        );
        entries.remove(index);
        Ok(())
    })
}

/// Reads the calendar file for an edit, applies `change`, checks the result reads as the
/// policy would, and replaces the file.
fn edit_file(
    path: &Path,
    config: &Config,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let _lock = crate::files::lock(path)?;
    let mut doc = crate::files::read_document(path, NEW_CALENDAR, |text| {
        parse(path, text.to_string(), config)
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    change(&mut doc)?;
    let text = doc.to_string();
    parse(path, text.clone(), config).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::files::replace(path, &text, None)
}

/// Checks references against the config, with located errors.
struct Checker<'a> {
    source: &'a SourceText,
    config: &'a Config,
}

impl Checker<'_> {
    fn profile(&self, profile: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
        if self.config.profiles.contains_key(profile.get_ref()) {
            return Ok(());
        }
        let known: Vec<&str> = self.config.profiles.keys().map(String::as_str).collect();
        Err(self.source.error_at(
            profile.span(),
            key,
            format!(
                "unknown profile {:?} (known: {})",
                profile.get_ref(),
                known.join(", ")
            ),
        ))
    }

    fn schools(
        &self,
        schools: Option<&[Spanned<String>]>,
        key: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(schools) = schools else {
            return Ok(None);
        };
        for school in schools {
            if !self.config.has_school(school.get_ref()) {
                return Err(self.source.error_at(
                    school.span(),
                    key,
                    format!("unknown school {:?}", school.get_ref()),
                ));
            }
        }
        Ok(Some(schools.iter().map(|s| s.get_ref().clone()).collect()))
    }

    fn schedules(
        &self,
        schedules: Option<&[Spanned<String>]>,
        key: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(schedules) = schedules else {
            return Ok(None);
        };
        for schedule in schedules {
            if !self.config.schedules.contains_key(schedule.get_ref()) {
                let known: Vec<&str> = self.config.schedules.keys().map(String::as_str).collect();
                return Err(self.source.error_at(
                    schedule.span(),
                    key,
                    format!(
                        "unknown schedule {:?} (known: {})",
                        schedule.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(Some(
            schedules.iter().map(|s| s.get_ref().clone()).collect(),
        ))
    }

    fn date(&self, value: &Spanned<toml::Value>, key: &str) -> Result<Date, ConfigError> {
        let text = match value.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
            other => other.to_string(),
        };
        text.trim().parse::<Date>().map_err(|_| {
            self.source.error_at(
                value.span(),
                key,
                format!("{text} is not a date (YYYY-MM-DD)"),
            )
        })
    }

    fn range(
        &self,
        from: &Spanned<toml::Value>,
        to: Option<&Spanned<toml::Value>>,
        key: &str,
    ) -> Result<(Date, Date), ConfigError> {
        let first = self.date(from, &format!("{key}.from"))?;
        let Some(to) = to else {
            return Ok((first, first));
        };
        let last = self.date(to, &format!("{key}.to"))?;
        if last < first {
            return Err(self.source.error_at(
                to.span(),
                &format!("{key}.to"),
                format!("{last} is before `from` ({first})"),
            ));
        }
        let days = first
            .until(last)
            .map_or(i64::MAX, |span| i64::from(span.get_days()));
        if days >= crate::policy::time::MAX_RANGE_DAYS {
            return Err(self.source.error_at(
                to.span(),
                &format!("{key}.to"),
                format!(
                    "{first} to {last} is more than two years; write one entry per school year"
                ),
            ));
        }
        Ok((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        toml::from_str(
            r#"
[profiles.exam]
[profiles.primary]
[schedules.lessons]
days = ["mon"]
times = ["07:00-11:00"]
[[schools]]
id = "a"
name = "A"
networks = ["10.0.0.0/24"]
profile = "primary"
"#,
        )
        .unwrap()
    }

    #[test]
    fn entries_are_checked_with_their_line() {
        let text = "[[exams]]\nname = \"HK1\"\nfrom = 2026-12-21\nto = \"2026-12-23\"\nprofile = \"exam\"\nschools = [\"a\"]\n\n[[holidays]]\nname = \"Tết\"\nfrom = 2027-02-05\nto = 2027-02-12\n";
        let calendar = parse(Path::new("cal.toml"), text.into(), &config()).unwrap();
        assert_eq!(calendar.entries.len(), 2);
        let exam = &calendar.entries[0];
        assert!(exam.covers("2026-12-22".parse().unwrap()));
        assert!(!exam.covers("2026-12-24".parse().unwrap()));
        assert!(exam.applies_to(Some("a")) && !exam.applies_to(None));
        assert_eq!(exam.origin, "cal.toml:3");
        assert!(calendar.entries[1].applies_to(None));

        for (bad, line, key) in [
            (
                "[[exams]]\nname = \"x\"\nfrom = 2026-12-21\nprofile = \"nope\"\n",
                4,
                "exams[0].profile",
            ),
            (
                "[[holidays]]\nname = \"x\"\nfrom = \"2026-13-01\"\n",
                3,
                "holidays[0].from",
            ),
            (
                "[[holidays]]\nname = \"x\"\nfrom = 2026-12-21\nto = 2026-12-01\n",
                4,
                "holidays[0].to",
            ),
            (
                "[[holidays]]\nname = \"x\"\nfrom = 2026-12-21\nschools = [\"zz\"]\n",
                4,
                "holidays[0].schools",
            ),
            (
                "[[holidays]]\nname = \"x\"\nfrom = 2026-12-21\nschedules = [\"recess\"]\n",
                4,
                "holidays[0].schedules",
            ),
        ] {
            let err = parse(Path::new("cal.toml"), bad.into(), &config()).unwrap_err();
            assert_eq!((err.line, err.key.as_str()), (line, key), "{err}");
        }
    }
}
