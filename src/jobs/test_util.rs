//! Helpers shared by the tests of this module.

use std::fs;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use super::JobId;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("pdfworker-jobs-{}", JobId::new()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Starts keeping every WARN and ERROR line logged from now on (as `"{message}"`) and returns
/// them. Lines from other tests come too: filter by job id.
pub(crate) fn capture_warnings() -> &'static Mutex<Vec<String>> {
    static LOGGER: OnceLock<Capture> = OnceLock::new();
    let logger = LOGGER.get_or_init(|| Capture(Mutex::new(Vec::new())));
    // Fails only if a logger is already set; then it is ours, set by an earlier call.
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    &logger.0
}

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}
