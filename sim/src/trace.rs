//! Writing and reading traces (record types: [`clinit_engine::trace`]).
//!
//! The sink can keep nothing (fastest, for sweeps), only hash (the run's
//! `trace_sha256`, for determinism checks), keep the lines in memory (tests,
//! snapshots, shrinking) and/or stream them to a file (`--trace FILE`).

use crate::host::{DecisionDigest, Output};
use clinit_engine::trace::{Header, Record, FORMAT};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, Write};
use thiserror::Error;

/// What the sink does with records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceMode {
    /// Nothing: no serialisation cost at all.
    Off,
    /// Hash the lines (and the decisions) only.
    Hash,
    /// Hash and keep the lines in memory.
    Keep,
}

pub struct TraceSink {
    mode: TraceMode,
    hasher: Sha256,
    lines: Vec<String>,
    out: Option<Box<dyn Write + Send>>,
    buf: Vec<u8>,
    records: u64,
    digest: DecisionDigest,
    error: Option<String>,
}

/// What a finished trace amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_sha256: String,
    pub decisions_sha256: String,
    pub records: u64,
}

impl TraceSink {
    pub fn new(mode: TraceMode, out: Option<Box<dyn Write + Send>>) -> TraceSink {
        // A file needs the lines serialised even in Off mode.
        let mode = if out.is_some() && mode == TraceMode::Off { TraceMode::Hash } else { mode };
        TraceSink {
            mode,
            hasher: Sha256::new(),
            lines: Vec::new(),
            out,
            buf: Vec::with_capacity(4096),
            records: 0,
            digest: DecisionDigest::default(),
            error: None,
        }
    }

    pub fn is_on(&self) -> bool {
        self.mode != TraceMode::Off
    }

    fn line(&mut self) {
        self.buf.push(b'\n');
        self.hasher.update(&self.buf);
        if self.mode == TraceMode::Keep {
            let text = String::from_utf8_lossy(&self.buf[..self.buf.len() - 1]).into_owned();
            self.lines.push(text);
        }
        if let Some(out) = &mut self.out {
            if let Err(e) = out.write_all(&self.buf) {
                self.error.get_or_insert_with(|| e.to_string());
                self.out = None;
            }
        }
    }

    pub fn header<C: Serialize>(&mut self, header: &Header<C>) {
        if !self.is_on() {
            return;
        }
        self.buf.clear();
        if let Err(e) = serde_json::to_writer(&mut self.buf, header) {
            self.error.get_or_insert_with(|| e.to_string());
        }
        self.line();
    }

    pub fn record(&mut self, rec: &Record) {
        if !self.is_on() {
            return;
        }
        self.records += 1;
        self.buf.clear();
        if let Err(e) = serde_json::to_writer(&mut self.buf, rec) {
            self.error.get_or_insert_with(|| e.to_string());
        }
        self.line();
    }

    pub fn decisions(&mut self, out: &Output) {
        if self.is_on() {
            self.digest.add(out);
        }
    }

    /// Write the [`Record::End`] line and flush. `None` when tracing was off.
    pub fn finish(&mut self) -> Option<TraceSummary> {
        if !self.is_on() {
            return None;
        }
        let decisions_sha256 = self.digest.hex();
        let end = Record::End { records: self.records, decisions_sha256: decisions_sha256.clone() };
        self.buf.clear();
        if let Err(e) = serde_json::to_writer(&mut self.buf, &end) {
            self.error.get_or_insert_with(|| e.to_string());
        }
        self.line();
        if let Some(out) = &mut self.out {
            if let Err(e) = out.flush() {
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
        Some(TraceSummary {
            trace_sha256: crate::host::hex(&self.hasher.clone().finalize()),
            decisions_sha256,
            records: self.records,
        })
    }

    /// Lines kept in [`TraceMode::Keep`].
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    /// The first write or serialisation error, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[derive(Debug, Error)]
pub enum TraceError {
    #[error("cannot read the trace: {0}")]
    Io(#[from] io::Error),
    #[error("the trace is empty")]
    Empty,
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("line 1: format {found:?} is not {FORMAT:?}")]
    Format { found: String },
}

/// A parsed trace.
#[derive(Debug, Clone)]
pub struct Trace {
    pub header: Header<serde_json::Value>,
    pub records: Vec<Record>,
}

/// Parse a trace from JSON lines.
pub fn read_trace(reader: impl BufRead) -> Result<Trace, TraceError> {
    let mut lines = reader.lines().enumerate();
    let header_line = loop {
        match lines.next() {
            None => return Err(TraceError::Empty),
            Some((_, l)) => {
                let l = l?;
                if !l.trim().is_empty() {
                    break l;
                }
            }
        }
    };
    let header: Header<serde_json::Value> = serde_json::from_str(&header_line)
        .map_err(|e| TraceError::Line { line: 1, why: format!("not a trace header: {e}") })?;
    if header.format != FORMAT {
        return Err(TraceError::Format { found: header.format });
    }
    let mut records = Vec::new();
    for (i, line) in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line)
            .map_err(|e| TraceError::Line { line: i + 1, why: e.to_string() })?;
        records.push(rec);
    }
    Ok(Trace { header, records })
}
