//! Logs as hclog JSON lines on stderr, the form Terraform's plugin client
//! parses, so `TF_LOG=DEBUG` (or `TF_LOG_PROVIDER`) shows them.
//!
//! Rule: no secret is ever passed to a log macro. Values are logged by name
//! and size, never private key material (see DESIGN.md).

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::json;
use time::macros::format_description;
use time::OffsetDateTime;

struct HclogJson;

fn hclog_level(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// One log line in hclog's JSON form.
pub fn format_line(level: Level, target: &str, message: &str, now: OffsetDateTime) -> String {
    json!({
        "@level": hclog_level(level),
        "@message": message,
        "@module": format!("etcd.{}", target.rsplit("::").next().unwrap_or(target)),
        // go-plugin parses exactly this layout (microseconds, UTC offset).
        "@timestamp": now
            .to_offset(time::UtcOffset::UTC)
            .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"))
            .unwrap_or_default(),
    })
    .to_string()
}

impl Log for HclogJson {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // Our own modules log down to trace; libraries only their warnings.
        metadata.target().starts_with("terraform_provider_etcd") || metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            record.level(),
            record.target(),
            &record.args().to_string(),
            OffsetDateTime::now_utc(),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
    }

    fn flush(&self) {}
}

/// Installs the logger for the whole process.
pub fn init() {
    static LOGGER: HclogJson = HclogJson;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hclog_json() {
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let line = format_line(
            Level::Debug,
            "terraform_provider_etcd::resources::ca",
            "created \"x\"",
            now,
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["@level"], "debug");
        assert_eq!(parsed["@module"], "etcd.ca");
        assert_eq!(parsed["@message"], "created \"x\"");
        assert_eq!(parsed["@timestamp"], "1970-01-01T00:00:00.000000Z");
    }
}
