//! Progress events: with `--progress json`, one JSON object per line on
//! stderr for each step of a run, for CI systems to follow:
//! `{"step":"render","status":"ok","output":"lab","elapsed_ms":12}`.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Where progress events go.
pub trait Progress: Sync {
    fn event(&self, step: &str, status: &str, output: Option<&str>, elapsed_ms: u128);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: &str, _: &str, _: Option<&str>, _: u128) {}
}

/// Writes one JSON line per event.
pub struct JsonLines<W: Write + Send>(pub Mutex<W>);

impl<W: Write + Send> Progress for JsonLines<W> {
    fn event(&self, step: &str, status: &str, output: Option<&str>, elapsed_ms: u128) {
        let line =
            serde_json::json!({"step": step, "status": status, "output": output, "elapsed_ms": elapsed_ms as u64});
        if let Ok(mut w) = self.0.lock() {
            let _ = writeln!(w, "{line}");
        }
    }
}

/// Runs `work` as a step: a `start` event, then `ok` or `fail` with the
/// time it took.
pub fn step<T, E>(
    progress: &dyn Progress,
    name: &str,
    output: Option<&str>,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    progress.event(name, "start", output, 0);
    let started = Instant::now();
    let result = work();
    let status = if result.is_ok() { "ok" } else { "fail" };
    progress.event(name, status, output, started.elapsed().as_millis());
    result
}
