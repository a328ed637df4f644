//! Writes a production node's machine inputs as a trace (`mosha --record`),
//! in the format of [`clinit_engine::trace`], so `clinit-sim replay` can
//! re-run a real incident through the same machines.
//!
//! Each record is flushed as it is written: the interesting part of an
//! incident is often just before a crash. A write error is logged once and
//! ends the recording; it never stops the node.

use clinit_engine::trace::{Header, Record};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tracing::error;

pub struct TraceWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl TraceWriter {
    /// Create (or truncate) `path` and write the header line.
    pub fn create(path: &Path, header: &Header<serde_json::Value>) -> io::Result<TraceWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(TraceWriter { path: path.to_path_buf(), out: Some(out) })
    }

    /// Append one record (a no-op once writing has failed).
    pub fn write(&mut self, record: &Record) {
        let Some(out) = self.out.as_mut() else { return };
        let result = serde_json::to_writer(&mut *out, record)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = result {
            error!("recording to {} stopped: {e}", self.path.display());
            self.out = None;
        }
    }
}
