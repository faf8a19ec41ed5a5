//! Each hit as one JSON line through `tracing`, for districts that ship logs to their own
//! collector (`[hitlog] json = "stdout"` or a file path).
//!
//! Hits are emitted as `tracing` events with target [`TARGET`] and the JSON text in the field
//! `hit`. [`layer`] is the subscriber layer that writes exactly that text, one line per event,
//! to the sink [`install`] opened; the binary installs it beside its normal log layer, which
//! filters the target out. Events come from the hit-log writer thread only, so nothing here
//! runs on the query path; the sink is buffered and flushed after each batch.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The `tracing` target of hit events.
pub const TARGET: &str = "schooldns::hits";

static SINK: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Opens the sink: `stdout`, or a file appended to (created with its folder).
pub fn install(target: &str) -> io::Result<()> {
    let sink: Box<dyn Write + Send> = if target == "stdout" {
        Box::new(BufWriter::new(io::stdout()))
    } else {
        let path = Path::new(target);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Box::new(BufWriter::new(file))
    };
    SINK.set(Mutex::new(sink))
        .map_err(|_| io::Error::other("the hit JSON sink is already open"))
}

/// Whether a sink is open (otherwise hits are not formatted as JSON at all).
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Emits one hit.
pub fn emit(json: &str) {
    tracing::info!(target: TARGET, hit = json);
}

/// Pushes buffered lines out (after each batch).
pub fn flush() {
    if let Some(sink) = SINK.get()
        && let Ok(mut sink) = sink.lock()
    {
        let _ = sink.flush();
    }
}

/// The layer writing hit events to the sink. Pair it with a filter on [`TARGET`].
pub fn layer() -> HitJsonLayer {
    HitJsonLayer
}

/// See [`layer`].
pub struct HitJsonLayer;

struct HitField(Option<String>);

impl Visit for HitField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "hit" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "hit" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for HitJsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut field = HitField(None);
        event.record(&mut field);
        if let (Some(line), Some(sink)) = (field.0, SINK.get())
            && let Ok(mut sink) = sink.lock()
        {
            let _ = writeln!(sink, "{line}");
        }
    }
}
