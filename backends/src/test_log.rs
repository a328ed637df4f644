//! For unit tests only: capture what `tracing` logs while a closure runs,
//! as the plain text lines `mosha` and `clinit -d` write (level, target,
//! message; no time, no colour), so a test can check what a line says, at
//! which level, and that it is one line.

use std::io;
use std::sync::{Arc, Mutex};

/// A shared buffer the subscriber writes into.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buf = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Run `f` with every event of this thread logged into a buffer, at every
/// level; returns `f`'s result and the text logged.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, String) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    (result, String::from_utf8_lossy(&bytes).into_owned())
}

/// The lines of `logged` that contain `needle`.
pub fn lines_with<'a>(logged: &'a str, needle: &str) -> Vec<&'a str> {
    logged.lines().filter(|l| l.contains(needle)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_each_event_as_one_line_with_its_level() {
        let ((), logged) = capture(|| {
            tracing::info!("first");
            tracing::warn!("second");
        });
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 2, "{logged}");
        assert!(lines[0].contains("INFO") && lines[0].ends_with("first"), "{logged}");
        assert!(lines[1].contains("WARN") && lines[1].ends_with("second"), "{logged}");
    }
}
