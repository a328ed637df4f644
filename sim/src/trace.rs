//! Writing and reading traces (record types: [`clinit_engine::trace`]).
//!
//! The sink can keep nothing (fastest, for sweeps), only hash (the run's
//! `trace_sha256`, for determinism checks), keep the lines in memory (tests,
//! snapshots, shrinking) and/or stream them to a file (`--trace FILE`).
//!
//! `trace_sha256` is the SHA-256 of the trace in its *hashed form*, which
//! the lines determine and which determines the lines: every line as
//! written (with its newline), except that a [`Record::Cycle`] line is
//! replaced by a compact form ([`CycleEncoder::hashed`]) in which what a
//! cycle repeats from the same node's last one (every node's clstat, the
//! members, the hactl) is a digest. Why: a 100-node cycle line is ~9 KB
//! of which only the ages change from cycle to cycle; hashing and even
//! writing it out was most of a traced simulation's cost. The written
//! lines are unchanged (a file's own SHA-256 is no longer `trace_sha256`).

use crate::host::{DecisionDigest, Output};
use clinit_engine::cltab::Cltab;
use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::{NodeStatus, Observation};
use clinit_engine::status::ClStat;
use clinit_engine::trace::{Header, Record, FORMAT};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;
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
    cycles: CycleEncoder,
    records: u64,
    digest: DecisionDigest,
    error: Option<String>,
}

/// What a finished trace amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// SHA-256 (hex) of the trace's hashed form (see the module's docs):
    /// a function of the lines, not the SHA-256 of a written file.
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
            cycles: CycleEncoder::default(),
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
        self.emit();
    }

    /// Keep and/or write out `buf`, a whole line with its newline.
    fn emit(&mut self) {
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
        if !matches!(rec, Record::Cycle { .. }) {
            if let Err(e) = self.cycles.record(&mut self.buf, rec) {
                self.error.get_or_insert_with(|| e.to_string());
            }
            self.line();
            return;
        }
        // A cycle is hashed in its compact form; its line is written out
        // only when someone reads it.
        if let Err(e) = self.cycles.hashed(&mut self.buf, rec) {
            self.error.get_or_insert_with(|| e.to_string());
        }
        self.hasher.update(&self.buf);
        if self.mode == TraceMode::Keep || self.out.is_some() {
            self.buf.clear();
            if let Err(e) = self.cycles.record(&mut self.buf, rec) {
                self.error.get_or_insert_with(|| e.to_string());
            }
            self.buf.push(b'\n');
            self.emit();
        }
    }

    pub fn decisions(&mut self, out: &Output) {
        if self.is_on() {
            self.digest.add(out);
        }
    }

    /// Add the canonical decision text of one record (as a
    /// [`clinit_engine::cluster::ClusterDriver`]'s trace tap gives it;
    /// empty for records that decide nothing).
    pub fn decision_text(&mut self, rec: &Record, text: &str) {
        if self.is_on() {
            self.digest.add_text(rec, text);
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

/// Distinct hactls kept by [`CycleEncoder`].
const CACHED_HACTLS: usize = 4;

/// Node ids up to this many get a cache slot; larger ones (not seen in
/// simulations) are serialised every time, so a stray id cannot make the
/// caches huge.
const CACHED_NODES: usize = 1 << 12;

/// Writes [`Record`]s as `serde_json::to_writer` does, byte for byte, but a
/// [`Record::Cycle`] by hand: its clstats, hactl and members are the same
/// from cycle to cycle in a steady cluster, and serialising them again was
/// most of a traced run's cost. Their JSON is kept and copied instead.
#[derive(Default)]
struct CycleEncoder {
    /// Per observed node: the JSON of its last `Read` status up to the
    /// age, and every `Arc` known to hold that content (see
    /// [`CycleEncoder::read`]). Holding the `Arc`s keeps their addresses
    /// from being reused while they are keys.
    reads: Vec<Option<ReadText>>,
    /// The last few distinct hactls and their JSON, most recent first.
    /// Shared by all nodes, as they mostly hold the same one. A few, not
    /// one, so that nodes holding different ones for a while (during
    /// replication, across a partition) do not make it re-serialise every
    /// cycle. Each keeps every `Arc` found equal to it, as for clstats:
    /// every node holds its own copy, so at 100 nodes taking turns a cache
    /// of one `Arc` compared the content on nearly every record (a tenth
    /// of a traced run).
    hactls: Vec<Equal<Hactl>>,
    /// The last members list and its JSON: all nodes on one side of the
    /// cluster have the same.
    members: Option<(Vec<u32>, Vec<u8>)>,
    /// The digest of `members`' JSON, once asked for.
    members_digest: Option<[u8; 32]>,
    /// Per tracing node: the statuses of its last cycle (see
    /// [`NodesDigest`]).
    observed: Vec<Option<NodesDigest>>,
    /// Scratch space for the texts a digest is taken of.
    scratch: Vec<u8>,
}

/// A cycle's `nodes` without their ages, as a digest: what the compact
/// form of a cycle record hashes (see [`CycleEncoder::hashed`]).
struct NodesDigest {
    /// The statuses it is the digest of, in order: an `Arc` held (so its
    /// address is not reused) is compared by address, anything else by
    /// value. Every reader holds its own `Arc` of each node's clstat, the
    /// same one from cycle to cycle while the clstat does not change.
    statuses: Vec<(u32, Seen)>,
    digest: [u8; 32],
}

enum Seen {
    Read(Arc<ClStat>),
    Other(NodeStatus),
}

impl NodesDigest {
    /// Whether `nodes` are the statuses this is the digest of, ages aside.
    fn of(&self, nodes: &std::collections::BTreeMap<u32, NodeStatus>) -> bool {
        self.statuses.len() == nodes.len()
            && self.statuses.iter().zip(nodes).all(|((id, seen), (node, status))| {
                id == node
                    && match (seen, status) {
                        (Seen::Read(a), NodeStatus::Read { clstat, .. }) => Arc::ptr_eq(a, clstat),
                        (Seen::Other(a), b) => a == b,
                        _ => false,
                    }
            })
    }
}

/// Most `Arc`s kept as equal to one clstat text: one per reader of the
/// node in a 256-node cluster; beyond, the set starts again (still right,
/// only a comparison more).
const EQUAL_ARCS: usize = 256;

/// The JSON of one node's `Read` status up to its age, and the `Arc`s
/// whose content it is.
type ReadText = Equal<ClStat>;

/// A text and the `Arc`s whose content it is the JSON of (or starts
/// with), ascending by address. Holding them keeps their addresses from
/// being reused while they are keys.
struct Equal<T> {
    /// Never empty.
    equal: Vec<Arc<T>>,
    text: Vec<u8>,
    /// The SHA-256 of `text`, once asked for.
    digest: Option<[u8; 32]>,
}

impl<T: PartialEq> Equal<T> {
    /// The address `value` is kept under.
    fn key(value: &Arc<T>) -> usize {
        Arc::as_ptr(value) as usize
    }

    /// One of the `Arc`s (all hold the same content).
    fn one(&self) -> Option<&Arc<T>> {
        self.equal.first()
    }

    /// Whether `value` holds this text's content: a binary search by
    /// address for an `Arc` seen before; for another, one comparison of
    /// the content, and the `Arc` is kept when equal.
    fn holds(&mut self, value: &Arc<T>) -> bool {
        match self.equal.binary_search_by_key(&Self::key(value), Self::key) {
            Ok(_) => true,
            Err(at) if self.one().is_some_and(|c| **c == **value) => {
                if self.equal.len() >= EQUAL_ARCS {
                    self.equal.clear();
                    self.equal.push(Arc::clone(value));
                } else {
                    self.equal.insert(at, Arc::clone(value));
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// `slots[id]`, grown on demand; `None` for an id too large to cache.
fn slot<T>(slots: &mut Vec<Option<T>>, id: u32) -> Option<&mut Option<T>> {
    let i = usize::try_from(id).ok().filter(|&i| i < CACHED_NODES)?;
    if slots.len() <= i {
        slots.resize_with(i + 1, || None);
    }
    slots.get_mut(i)
}

fn json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(buf, value)
}

/// An unsigned integer as serde_json writes it (plain decimal digits),
/// without its per-call overhead: a line has one per observed node.
fn uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// A map key: serde_json writes integer keys as strings.
fn key(buf: &mut Vec<u8>, id: u32) {
    buf.push(b'"');
    uint(buf, id.into());
    buf.extend_from_slice(b"\":");
}

impl CycleEncoder {
    /// Append `rec` to `buf`. Should the hand-written path fail, the line
    /// is redone by serde_json so that even its error output is the same.
    fn record(&mut self, buf: &mut Vec<u8>, rec: &Record) -> serde_json::Result<()> {
        let Record::Cycle { node, adopt, obs } = rec else {
            return json(buf, rec);
        };
        let start = buf.len();
        self.cycle(buf, *node, adopt.as_ref(), obs).or_else(|_| {
            buf.truncate(start);
            json(buf, rec)
        })
    }

    /// The field order and representation of `Record::Cycle` and
    /// `Observation` as derived by serde (`adopt` skipped when `None`).
    fn cycle(
        &mut self,
        buf: &mut Vec<u8>,
        node: u32,
        adopt: Option<&Cltab>,
        obs: &Observation,
    ) -> serde_json::Result<()> {
        // Every field named, so a new one cannot be left out silently.
        let Observation { now, me, members, nodes, hactl } = obs;
        buf.extend_from_slice(b"{\"cycle\":{\"node\":");
        uint(buf, node.into());
        if let Some(adopt) = adopt {
            buf.extend_from_slice(b",\"adopt\":");
            json(buf, adopt)?;
        }
        buf.extend_from_slice(b",\"obs\":{\"now\":");
        uint(buf, now.0);
        buf.extend_from_slice(b",\"me\":");
        uint(buf, (*me).into());
        buf.extend_from_slice(b",\"members\":");
        self.members(buf, members)?;
        buf.extend_from_slice(b",\"nodes\":{");
        for (i, (&id, status)) in nodes.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            match status {
                NodeStatus::Read { clstat, age } => {
                    self.read(buf, id, clstat)?;
                    uint(buf, age.0);
                    buf.extend_from_slice(b"}}");
                }
                other => {
                    key(buf, id);
                    json(buf, other)?;
                }
            }
        }
        buf.extend_from_slice(b"},\"hactl\":");
        match hactl {
            None => buf.extend_from_slice(b"null"),
            Some(hactl) => self.hactl(buf, hactl)?,
        }
        buf.extend_from_slice(b"}}}");
        Ok(())
    }

    /// `"id":{"Read":{"clstat":{..},"age":`: all of node `id`'s entry
    /// but the age, which changes every cycle when the clstat does not.
    fn read(&mut self, buf: &mut Vec<u8>, id: u32, clstat: &Arc<ClStat>) -> serde_json::Result<()> {
        let write = |buf: &mut Vec<u8>| {
            key(buf, id);
            buf.extend_from_slice(b"{\"Read\":{\"clstat\":");
            json(buf, clstat)?;
            buf.extend_from_slice(b",\"age\":");
            Ok(())
        };
        let Some(slot) = slot(&mut self.reads, id) else {
            return write(buf);
        };
        // Every reader parses its own copy of a node's clstat, so the same
        // content comes in one `Arc` per reader. Each `Arc` found equal
        // once is kept: a later record of it costs a binary search by
        // address, not a comparison of the content (which, at 100 readers
        // taking turns, was a sixth of a traced run), nor serialising again.
        if let Some(r) = slot {
            if r.holds(clstat) {
                buf.extend_from_slice(&r.text);
                return Ok(());
            }
        }
        let mut text = Vec::new();
        write(&mut text)?;
        buf.extend_from_slice(&text);
        *slot = Some(ReadText { equal: vec![Arc::clone(clstat)], text, digest: None });
        Ok(())
    }

    fn members(&mut self, buf: &mut Vec<u8>, members: &[u32]) -> serde_json::Result<()> {
        match &self.members {
            Some((cached, text)) if cached == members => buf.extend_from_slice(text),
            _ => {
                let text = serde_json::to_vec(members)?;
                buf.extend_from_slice(&text);
                self.members = Some((members.to_vec(), text));
                self.members_digest = None;
            }
        }
        Ok(())
    }

    /// The compact form of a [`Record::Cycle`] that `trace_sha256` hashes
    /// instead of its line (other records are hashed as their lines).
    /// Integers are little-endian; a digest is a SHA-256 (32 bytes):
    ///
    /// ```text
    /// 0x00                  no JSON line starts with it
    /// node: u32, now: u64, me: u32
    /// adopt:   0x00 (none) | 0x01, u64 length, the cltab's JSON
    /// members: digest of the members' JSON
    /// nodes:   u64 count, digest D, then the age (u64, ms) of each
    ///          `Read` status in node order
    /// hactl:   0x00 (null) | 0x01, digest of the hactl's JSON
    /// ```
    ///
    /// D is the digest of each status in node order as its line writes it
    /// (`"id":` and the JSON value), a `Read` status cut before its age
    /// value (it ends in `"age":`), each followed by `\n`. D is computed
    /// once per tracing node and change of what it observes, not per cycle.
    fn hashed(&mut self, buf: &mut Vec<u8>, rec: &Record) -> serde_json::Result<()> {
        let Record::Cycle { node, adopt, obs } = rec else {
            return json(buf, rec);
        };
        let Observation { now, me, members, nodes, hactl } = obs;
        buf.push(0);
        buf.extend_from_slice(&node.to_le_bytes());
        buf.extend_from_slice(&now.0.to_le_bytes());
        buf.extend_from_slice(&me.to_le_bytes());
        match adopt {
            None => buf.push(0),
            Some(adopt) => {
                let text = serde_json::to_vec(adopt)?;
                buf.push(1);
                buf.extend_from_slice(&(text.len() as u64).to_le_bytes());
                buf.extend_from_slice(&text);
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.members(&mut scratch, members)?;
        let digest = *self.members_digest.get_or_insert_with(|| Sha256::digest(&scratch).into());
        buf.extend_from_slice(&digest);
        buf.extend_from_slice(&(nodes.len() as u64).to_le_bytes());
        let kept = slot(&mut self.observed, *me).and_then(|s| s.as_ref()).filter(|d| d.of(nodes));
        let digest = match kept {
            Some(d) => d.digest,
            None => {
                let mut hasher = Sha256::new();
                let mut statuses = Vec::with_capacity(nodes.len());
                for (&id, status) in nodes {
                    scratch.clear();
                    match status {
                        NodeStatus::Read { clstat, .. } => {
                            self.read(&mut scratch, id, clstat)?;
                            statuses.push((id, Seen::Read(Arc::clone(clstat))));
                        }
                        other => {
                            key(&mut scratch, id);
                            json(&mut scratch, other)?;
                            statuses.push((id, Seen::Other(other.clone())));
                        }
                    }
                    scratch.push(b'\n');
                    hasher.update(&scratch);
                }
                let digest: [u8; 32] = hasher.finalize().into();
                if let Some(s) = slot(&mut self.observed, *me) {
                    *s = Some(NodesDigest { statuses, digest });
                }
                digest
            }
        };
        buf.extend_from_slice(&digest);
        for status in nodes.values() {
            if let NodeStatus::Read { age, .. } = status {
                buf.extend_from_slice(&age.0.to_le_bytes());
            }
        }
        match hactl {
            None => buf.push(0),
            Some(hactl) => {
                scratch.clear();
                self.hactl(&mut scratch, hactl)?;
                let first = self.hactls.first_mut();
                let digest =
                    first.map(|c| *c.digest.get_or_insert_with(|| Sha256::digest(&c.text).into()));
                buf.push(1);
                buf.extend_from_slice(&digest.unwrap_or_else(|| Sha256::digest(&scratch).into()));
            }
        }
        self.scratch = scratch;
        Ok(())
    }

    /// An `Arc` seen before is the common case; an equal copy in another
    /// `Arc` (read anew, or replicated) is found by comparing and then
    /// kept with the text.
    fn hactl(&mut self, buf: &mut Vec<u8>, hactl: &Arc<Hactl>) -> serde_json::Result<()> {
        let key = Equal::key(hactl);
        let seen = |c: &Equal<Hactl>| c.equal.binary_search_by_key(&key, Equal::key).is_ok();
        let found = self.hactls.iter().position(seen);
        match found.or_else(|| self.hactls.iter_mut().position(|c| c.holds(hactl))) {
            Some(i) => self.hactls[..=i].rotate_right(1),
            None => {
                let text = serde_json::to_vec(hactl)?;
                self.hactls.truncate(CACHED_HACTLS - 1);
                self.hactls.insert(0, Equal { equal: vec![Arc::clone(hactl)], text, digest: None });
            }
        }
        if let Some(cached) = self.hactls.first() {
            buf.extend_from_slice(&cached.text);
        }
        Ok(())
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
    #[error("line {line}: format {found:?} is not {FORMAT:?}")]
    Format { line: usize, found: String },
    /// A line longer than [`MAX_LINE`] bytes: no writer of this format
    /// writes one, so the file is something else (`/dev/zero`, a binary).
    /// Never a cut tail: a writer killed mid-line leaves part of one
    /// record, which is shorter than a whole one, far below the cap.
    #[error("line {line}: longer than {max} bytes: not a recording", max = MAX_LINE)]
    TooLong { line: usize },
}

/// The longest line a replay reads, in bytes (16 MiB, newline excluded),
/// so a file that is not a recording (`/dev/zero`) is refused instead of
/// filling memory. The longest real records are a large run's `cycle`
/// lines: 17,263 bytes at most in `clinit-sim run --nodes 100 --groups 50
/// --duration 15m --trace` (measured), about 1,000 times below the cap.
pub const MAX_LINE: usize = 16 << 20;

/// Read one line, newline included, into `buf` (cleared first), reading
/// at most [`MAX_LINE`] + 1 bytes. Returns the bytes read (0 at the end of
/// the file). Errors: [`TraceError::TooLong`] for a longer line (`at` is
/// its number), [`TraceError::Io`].
fn read_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    at: usize,
) -> Result<usize, TraceError> {
    buf.clear();
    let n = reader.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
        return Err(TraceError::TooLong { line: at });
    }
    Ok(n)
}

/// A parsed trace.
#[derive(Debug, Clone)]
pub struct Trace {
    pub header: Header<serde_json::Value>,
    pub records: Vec<Record>,
}

/// A line as read, with invalid UTF-8 named at its line (`InvalidData` is
/// how `BufRead::lines` reports it) rather than as a bare I/O error.
fn located_line(i: usize, line: io::Result<String>) -> Result<String, TraceError> {
    line.map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => TraceError::Line { line: i + 1, why: "not UTF-8".into() },
        _ => TraceError::Io(e),
    })
}

/// Parse a trace from JSON lines.
pub fn read_trace(reader: impl BufRead) -> Result<Trace, TraceError> {
    let mut lines = reader.lines().enumerate();
    let (header_at, header_line) = loop {
        match lines.next() {
            None => return Err(TraceError::Empty),
            Some((i, l)) => {
                let l = located_line(i, l)?;
                if !l.trim().is_empty() {
                    break (i + 1, l);
                }
            }
        }
    };
    let header = parse_header(&header_line, header_at)?;
    let mut records = Vec::new();
    for (i, line) in lines {
        let line = located_line(i, line)?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line)
            .map_err(|e| TraceError::Line { line: i + 1, why: in_line(&e) })?;
        records.push(rec);
    }
    Ok(Trace { header, records })
}

/// How a recording ends when it has no [`Record::End`] line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cut {
    /// The line number of a last line cut in the middle (no newline, not
    /// a whole record), if there was one; it is left out.
    pub partial_line: Option<usize>,
}

/// A recording read leniently at its end, for verification: a writer
/// killed mid-run leaves no [`Record::End`] and possibly half a line,
/// and what precedes is still a valid recording.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header<serde_json::Value>,
    /// Every record but the end line, marks included, in file order.
    pub records: Vec<Record>,
    /// The end line's record count and digest.
    pub end: Option<(u64, String)>,
    /// Set when there is no end line.
    pub cut: Option<Cut>,
}

/// Read a recording (a trace from `mosha --record` or `clinit-sim run
/// --trace`). As [`read_trace`], except at the end: a missing
/// [`Record::End`] or a last line cut in the middle (no newline, not
/// parseable) give [`Recording::cut`] instead of an error. Errors: as
/// [`read_trace`] for the header and for any bad line before the last,
/// and [`TraceError::Line`] for a record after the end line. Holds every
/// record in memory; [`RecordStream`] reads one at a time.
pub fn read_recording(reader: impl BufRead) -> Result<Recording, TraceError> {
    let mut stream = RecordStream::open(reader)?;
    let mut records = Vec::new();
    for rec in stream.by_ref() {
        records.push(rec?);
    }
    let (end, cut) = stream.finish();
    Ok(Recording { header: stream.header, records, end, cut })
}

/// A recording read one record at a time, with [`read_recording`]'s rules,
/// so a replay holds one line in memory, not the file: an iterator of
/// the records but the end line (marks included). After the last,
/// [`RecordStream::finish`] gives the end line and the cut.
pub struct RecordStream<R> {
    reader: R,
    pub header: Header<serde_json::Value>,
    /// Lines read so far (1-based number of the last).
    line: usize,
    end: Option<(u64, String)>,
    partial_line: Option<usize>,
    done: bool,
}

impl<R: BufRead> RecordStream<R> {
    /// Read up to and including the header (blank lines before it are
    /// skipped). Errors: [`TraceError::Empty`], or the header's.
    pub fn open(mut reader: R) -> Result<RecordStream<R>, TraceError> {
        let mut line = 0;
        loop {
            let mut buf = Vec::new();
            if read_capped(&mut reader, &mut buf, line + 1)? == 0 {
                return Err(TraceError::Empty);
            }
            line += 1;
            if buf.trim_ascii().is_empty() {
                continue;
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let text = String::from_utf8(buf)
                .map_err(|_| TraceError::Line { line, why: "not UTF-8".into() })?;
            let header = parse_header(&text, line)?;
            return Ok(RecordStream {
                reader,
                header,
                line,
                end: None,
                partial_line: None,
                done: false,
            });
        }
    }

    /// The end line's (record count, digest), and the cut when there was
    /// no end line. Meaningful once the iterator returned `None`.
    pub fn finish(&self) -> (Option<(u64, String)>, Option<Cut>) {
        let cut = self.end.is_none().then_some(Cut { partial_line: self.partial_line });
        (self.end.clone(), cut)
    }

    fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        loop {
            let mut buf = Vec::new();
            if read_capped(&mut self.reader, &mut buf, self.line + 1)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let at = self.line;
            // Only the file's last line can lack its newline.
            let whole = buf.last() == Some(&b'\n');
            if whole {
                buf.pop();
            }
            if buf.trim_ascii().is_empty() {
                continue;
            }
            let parsed = String::from_utf8(buf)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(|line| serde_json::from_str::<Record>(&line).map_err(|e| in_line(&e)));
            let rec = match parsed {
                Ok(rec) => rec,
                // Half a line where a writer was killed: the cut, not an error.
                Err(_) if !whole && self.end.is_none() => {
                    self.partial_line = Some(at);
                    return Ok(None);
                }
                Err(why) => return Err(TraceError::Line { line: at, why }),
            };
            if self.end.is_some() {
                return Err(TraceError::Line {
                    line: at,
                    why: "a record after the end line".into(),
                });
            }
            match rec {
                Record::End { records: count, decisions_sha256 } => {
                    self.end = Some((count, decisions_sha256));
                }
                rec => return Ok(Some(rec)),
            }
        }
    }
}

impl<R: BufRead> Iterator for RecordStream<R> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(rec)) => Some(Ok(rec)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A JSON error inside one line of a recording, in plain words: the
/// column (the line is the caller's), then what is wrong
/// ([`crate::json_words::explain`]), control characters escaped.
fn in_line(e: &serde_json::Error) -> String {
    let p = crate::json_words::explain(e);
    format!("column {}: {}", p.column, clinit_engine::located::escape_controls(&p.what))
}

/// Parse line `at` as a trace header of this [`FORMAT`].
///
/// Errors: [`TraceError::Line`] when it is not a header (the serde message
/// escaped), [`TraceError::Format`] when it names another format.
fn parse_header(line: &str, at: usize) -> Result<Header<serde_json::Value>, TraceError> {
    let header: Header<serde_json::Value> = serde_json::from_str(line).map_err(|e| {
        TraceError::Line { line: at, why: format!("not a trace header: {}", in_line(&e)) }
    })?;
    if header.format != FORMAT {
        return Err(TraceError::Format { line: at, found: header.format });
    }
    check_header_policy(&header, at)?;
    Ok(header)
}

/// The header's policy (`config.policy`, in a simulator trace and in a
/// `mosha` recording alike), range-checked as `--policy` is
/// ([`crate::config::check_policy`]), whatever the replay then does with
/// it: a hand-edited header (`"lease": 0`) is refused in every mode, not
/// only when `--rerun` builds a world from it. A header without a policy
/// (a test's) passes.
fn check_header_policy(header: &Header<serde_json::Value>, at: usize) -> Result<(), TraceError> {
    let Some(policy) = header.config.get("policy") else { return Ok(()) };
    let bad =
        |why: String| TraceError::Line { line: at, why: format!("the header's policy: {why}") };
    let policy = crate::config::policy_from_value(policy).map_err(bad)?;
    crate::config::check_policy(&policy).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinit_engine::hactl::Want;
    use clinit_engine::status::{GroupState, GroupStatus};
    use clinit_engine::Millis;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Strings serde_json must escape: quotes, backslashes, controls,
    /// non-ASCII.
    const NASTY: &str = "say \"hi\" \\ back\nslash\t\u{1}\u{7f} é 漢字 🦀";

    fn clstat(groups: &[(&str, &str, GroupState)]) -> Arc<ClStat> {
        let groups = groups
            .iter()
            .map(|(g, level, state)| {
                (g.to_string(), GroupStatus { level: level.to_string(), state: state.clone() })
            })
            .collect();
        Arc::new(ClStat { groups })
    }

    fn hactl(groups: &[(&str, &str, &[u32])]) -> Hactl {
        let groups = groups
            .iter()
            .map(|(g, level, preferred)| {
                (g.to_string(), Want { level: level.to_string(), preferred: preferred.to_vec() })
            })
            .collect();
        Hactl { groups, ..Hactl::default() }
    }

    fn cycle(
        node: u32,
        adopt: Option<Cltab>,
        members: &[u32],
        nodes: Vec<(u32, NodeStatus)>,
        hactl: Option<Hactl>,
    ) -> Record {
        let obs = Observation {
            now: Millis(1_234_567),
            me: node,
            members: members.to_vec(),
            nodes: nodes.into_iter().collect(),
            hactl: hactl.map(Arc::new),
        };
        Record::Cycle { node, adopt, obs }
    }

    fn read(clstat: &Arc<ClStat>, age: u64) -> NodeStatus {
        NodeStatus::Read { clstat: Arc::clone(clstat), age: Millis(age) }
    }

    /// The encoder's line for `rec`, checked against serde_json's.
    fn assert_same(enc: &mut CycleEncoder, rec: &Record) -> String {
        let mut buf = b"kept".to_vec();
        enc.record(&mut buf, rec).expect("encodes");
        let want = serde_json::to_string(rec).expect("serde encodes");
        let got = String::from_utf8(buf.split_off(4)).expect("UTF-8");
        assert_eq!(buf, b"kept", "what was in the buffer is kept");
        assert_eq!(got, want);
        got
    }

    #[test]
    fn cycle_matches_serde_for_every_status() {
        let a = clstat(&[
            ("db", "start", GroupState::Done),
            ("web", "2", GroupState::Other(NASTY.into())),
            (NASTY, NASTY, GroupState::Starting),
        ]);
        let rec = cycle(
            1,
            None,
            &[1, 2, 3, 10, 4_000_000_000],
            vec![
                (2, read(&a, 6076)),
                (3, NodeStatus::Missing),
                (10, NodeStatus::Unreadable { reason: NASTY.into() }),
                (4_000_000_000, read(&clstat(&[]), 0)),
            ],
            Some(hactl(&[("db", "start", &[]), ("web", NASTY, &[3, 2]), (NASTY, "stop", &[0])])),
        );
        assert_same(&mut CycleEncoder::default(), &rec);
    }

    #[test]
    fn cycle_matches_serde_with_nothing_observed() {
        let mut enc = CycleEncoder::default();
        assert_same(&mut enc, &cycle(0, None, &[], vec![], None));
        assert_same(&mut enc, &cycle(0, None, &[], vec![], Some(Hactl::default())));
    }

    #[test]
    fn cycle_matches_serde_with_adopt() {
        let nasty = NASTY.replace('\n', " ");
        let text =
            format!(":::socket:/run/{nasty}\n:::other:x\nweb:srv:1,2:respawn:echo {nasty}\n");
        let cltab = Cltab::parse(&text, "cltab").expect("parses");
        assert_eq!(cltab.entries.len(), 1);
        let a = clstat(&[("web", "1", GroupState::Passed)]);
        let mut enc = CycleEncoder::default();
        for adopt in [Some(cltab), Some(Cltab::default()), None] {
            let rec = cycle(2, adopt, &[1, 2], vec![(1, read(&a, 5))], None);
            assert_same(&mut enc, &rec);
        }
    }

    #[test]
    fn clstat_cache_hit_writes_the_new_age() {
        let a = clstat(&[("web", "1", GroupState::Done)]);
        let mut enc = CycleEncoder::default();
        let first = assert_same(&mut enc, &cycle(1, None, &[1, 2], vec![(2, read(&a, 100))], None));
        // Seen by another tracing node too: the cache is per observed node.
        let hit = assert_same(&mut enc, &cycle(3, None, &[2, 3], vec![(2, read(&a, 200))], None));
        assert_ne!(first, hit);
        assert!(hit.contains("\"age\":200"));
        let cached = enc.reads.get(2).and_then(Option::as_ref).expect("cached");
        assert!(cached.equal.iter().any(|c| Arc::ptr_eq(c, &a)));
    }

    #[test]
    fn clstat_cache_miss_on_another_arc() {
        let a = clstat(&[("web", "1", GroupState::Done)]);
        let b = clstat(&[("web", "1", GroupState::Stopping)]);
        let equal_to_b = clstat(&[("web", "1", GroupState::Stopping)]);
        let mut enc = CycleEncoder::default();
        for (s, age) in [(&a, 1), (&b, 2), (&a, 3), (&equal_to_b, 4), (&b, 5)] {
            let rec = cycle(1, None, &[1, 2], vec![(2, read(s, age))], None);
            assert_same(&mut enc, &rec);
            let cached = enc.reads.get(2).and_then(Option::as_ref).expect("cached");
            assert!(cached.equal.iter().any(|c| Arc::ptr_eq(c, s)));
            // Only `Arc`s of the current content are kept, by address.
            assert!(cached.equal.iter().all(|c| **c == **s));
            assert!(cached.equal.windows(2).all(|w| ReadText::key(&w[0]) < ReadText::key(&w[1])));
        }
        // Both `Arc`s of b's content are kept after the last two steps.
        let cached = enc.reads.get(2).and_then(Option::as_ref).expect("cached");
        assert_eq!(cached.equal.len(), 2);
    }

    #[test]
    fn hactl_cache_follows_changes() {
        let h = |level: &str| hactl(&[("web", level, &[1]), ("db", "start", &[])]);
        let mut enc = CycleEncoder::default();
        let levels = ["1", "1", "2", "1", "3", "4", "5", "1", "5", "2", "2"];
        for (i, level) in levels.into_iter().enumerate() {
            let rec = cycle(i as u32 % 3, None, &[1, 2], vec![], Some(h(level)));
            assert_same(&mut enc, &rec);
            assert!(enc.hactls.len() <= CACHED_HACTLS);
            // The one just written is the most recent.
            assert_eq!(enc.hactls.first().and_then(Equal::one).map(|c| &**c), Some(&h(level)));
        }
        // "1" was used more recently than "3", which was evicted.
        let kept: Vec<String> = enc
            .hactls
            .iter()
            .filter_map(Equal::one)
            .map(|c| c.groups["web"].level.clone())
            .collect();
        assert_eq!(kept, ["2", "5", "1", "4"]);
        for hactl in [None, Some(Hactl::default()), Some(h("3"))] {
            assert_same(&mut enc, &cycle(1, None, &[1, 2], vec![], hactl));
        }
    }

    #[test]
    fn hactl_cache_hits_by_arc_and_keeps_every_equal_one() {
        let first = Arc::new(hactl(&[("web", "start", &[1])]));
        let copy = Arc::new((*first).clone());
        let mut enc = CycleEncoder::default();
        for (node, h) in [(1, &first), (2, &first), (1, &copy), (2, &copy)] {
            let mut rec = cycle(node, None, &[1, 2], vec![], None);
            if let Record::Cycle { obs, .. } = &mut rec {
                obs.hactl = Some(Arc::clone(h));
            }
            assert_same(&mut enc, &rec);
            assert_eq!(enc.hactls.len(), 1);
            let cached = enc.hactls.first().expect("cached");
            assert!(cached.equal.iter().any(|c| Arc::ptr_eq(c, h)));
        }
        // Both `Arc`s are kept, ascending by address, for one text.
        let cached = enc.hactls.first().expect("cached");
        assert_eq!(cached.equal.len(), 2);
        assert!(cached.equal.windows(2).all(|w| Equal::key(&w[0]) < Equal::key(&w[1])));
    }

    #[test]
    fn uint_matches_serde() {
        for n in [0, 1, 9, 10, 99, 100, 6076, u32::MAX.into(), u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            uint(&mut buf, n);
            assert_eq!(buf, serde_json::to_vec(&n).expect("serde encodes"));
        }
    }

    #[test]
    fn members_cache_follows_changes() {
        let mut enc = CycleEncoder::default();
        for members in [&[1, 2, 3][..], &[1, 2, 3], &[1, 2], &[], &[], &[1, 2, 3]] {
            assert_same(&mut enc, &cycle(1, None, members, vec![], None));
            assert_eq!(enc.members.as_ref().map(|(m, _)| m.as_slice()), Some(members));
        }
    }

    #[test]
    fn other_records_are_serde_json() {
        let mut enc = CycleEncoder::default();
        assert_same(&mut enc, &Record::Crash { node: 3, at: Millis(7) });
        assert_same(&mut enc, &Record::End { records: 9, decisions_sha256: NASTY.into() });
    }

    /// `clinit-sim replay /dev/zero` grew to 10 GB resident (issue 8): a
    /// line longer than the cap is refused, as the header and as a
    /// record, whether or not it ends the file.
    #[test]
    fn a_line_longer_than_the_cap_is_refused_not_buffered() {
        let zeros = io::BufReader::new(io::repeat(0));
        match RecordStream::open(zeros) {
            Err(e @ TraceError::TooLong { line: 1 }) => {
                assert_eq!(e.to_string(), "line 1: longer than 16777216 bytes: not a recording")
            }
            other => panic!("{:?}", other.map(|s| s.header)),
        }
        let mut sink = TraceSink::new(TraceMode::Keep, None);
        sink.header(&Header::new("test", "0", None, serde_json::Value::Null));
        let header = sink.lines()[0].clone() + "\n";
        for tail in ["", "\n"] {
            let text = format!("\n{header}{}{tail}", "x".repeat(MAX_LINE + 1));
            let mut stream = RecordStream::open(text.as_bytes()).expect("header");
            match stream.next() {
                Some(Err(TraceError::TooLong { line: 3 })) => {}
                other => panic!("{tail:?}: {other:?}"),
            }
        }
        // At the cap exactly: read, and refused only as not a record.
        let text = format!("{header}{}\n", "x".repeat(MAX_LINE));
        let mut stream = RecordStream::open(text.as_bytes()).expect("header");
        match stream.next() {
            Some(Err(TraceError::Line { line: 2, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    /// Every prefix of a valid recording (a writer killed at any byte)
    /// reads as a cut recording of the whole records before it, never an
    /// error, except inside the header; the whole file reads with its end.
    #[test]
    fn every_prefix_of_a_recording_is_a_cut_recording() {
        let a = clstat(&[("web", "1", GroupState::Done)]);
        let recs = [
            cycle(1, None, &[1, 2], vec![(2, read(&a, 1))], Some(Hactl::default())),
            Record::Mark {
                node: 1,
                at: Millis(2),
                wall_ms: 1_700_000_000_000,
                records: 1,
                decisions_sha256: "ab".into(),
            },
            Record::StopAll { node: 1, at: Millis(3) },
            Record::Crash { node: 1, at: Millis(4) },
        ];
        let mut sink = TraceSink::new(TraceMode::Keep, None);
        sink.header(&Header::new("test", "0", None, serde_json::Value::Null));
        for rec in &recs {
            sink.record(rec);
        }
        let _ = sink.finish();
        let text = sink.lines().join("\n") + "\n";
        let header_len = sink.lines()[0].len() + 1;
        for cut in 0..=text.len() {
            let prefix = &text.as_bytes()[..cut];
            let r = read_recording(prefix);
            if cut < header_len - 1 {
                assert!(r.is_err(), "header cut at {cut}");
                continue;
            }
            let r = r.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            if cut == header_len - 1 {
                // The whole header without its newline: nothing recorded.
                assert!(r.records.is_empty() && r.cut.is_some(), "cut at {cut}");
                continue;
            }
            let whole_lines = prefix.iter().filter(|&&b| b == b'\n').count();
            if cut >= text.len() - 1 {
                // The end line, with or without its newline: complete.
                assert_eq!(r.records, recs);
                assert_eq!(r.end.as_ref().map(|e| e.0), Some(recs.len() as u64));
                assert_eq!(r.cut, None);
                continue;
            }
            let complete = recs.len().min(whole_lines - 1);
            let partial = !prefix.ends_with(b"\n");
            // A cut line that still parses (a whole record without its
            // newline) counts as a record.
            let got = r.records.len();
            assert!(got == complete || (partial && got == complete + 1), "cut at {cut}: {got}");
            assert_eq!(r.records[..], recs[..got], "cut at {cut}");
            let cut_info = r.cut.unwrap_or_else(|| panic!("cut at {cut} reads as complete"));
            assert_eq!(cut_info.partial_line.is_some(), partial && got == complete, "cut at {cut}");
        }
    }

    /// `trace_sha256` of these records as a sink in `mode` gives it, and
    /// the lines it kept.
    fn summarise(mode: TraceMode, recs: &[Record]) -> (String, Vec<String>) {
        let mut sink = TraceSink::new(mode, None);
        sink.header(&Header::new("test", "0", Some(1), serde_json::Value::Null));
        for rec in recs {
            sink.record(rec);
        }
        let summary = sink.finish().expect("on");
        assert_eq!(sink.error(), None);
        (summary.trace_sha256, sink.take_lines())
    }

    /// The hashed form stands for the lines: hashing only, keeping the
    /// lines, and hashing the records read back from those lines all give
    /// the same `trace_sha256`; every age, clstat, status, member and
    /// hactl counts, an equal clstat in another `Arc` does not.
    #[test]
    fn trace_sha256_is_a_function_of_the_lines() {
        let a = clstat(&[("web", "1", GroupState::Done)]);
        let b = clstat(&[("web", "1", GroupState::Stopping)]);
        let b_again = Arc::new((*b).clone());
        let h = || Some(hactl(&[("web", "1", &[2])]));
        let obs = |me, nodes: Vec<(u32, NodeStatus)>| cycle(me, None, &[1, 2, 3], nodes, h());
        let recs = vec![
            obs(1, vec![(2, read(&a, 1)), (3, read(&b, 2))]),
            Record::StopAll { node: 1, at: Millis(2) },
            obs(1, vec![(2, read(&a, 3)), (3, read(&b, 4))]),
            obs(2, vec![(1, read(&b, 4)), (2, NodeStatus::Missing)]),
            obs(1, vec![(2, read(&a, 5)), (3, read(&b_again, 4))]),
            obs(1, vec![(2, read(&a, 6)), (3, NodeStatus::Unreadable { reason: NASTY.into() })]),
            cycle(3, Some(Cltab::default()), &[3], vec![], None),
        ];
        let (hashed, none) = summarise(TraceMode::Hash, &recs);
        let (kept, lines) = summarise(TraceMode::Keep, &recs);
        assert!(none.is_empty());
        assert_eq!(hashed, kept);
        let trace = read_trace((lines.join("\n") + "\n").as_bytes()).expect("reads");
        let reread: Vec<Record> =
            trace.records.into_iter().filter(|r| !matches!(r, Record::End { .. })).collect();
        assert_eq!(reread, recs);
        // Parsed anew, every clstat is in an `Arc` of its own: the same
        // content, the same lines, the same hash.
        assert_eq!(summarise(TraceMode::Hash, &reread).0, hashed);
        // Each change of a line changes the hash.
        let changed = [
            obs(1, vec![(2, read(&a, 3)), (3, read(&b, 5))]),
            obs(1, vec![(2, read(&a, 3)), (3, read(&a, 4))]),
            obs(1, vec![(2, read(&a, 3)), (3, NodeStatus::Missing)]),
            obs(1, vec![(2, read(&a, 3)), (4, read(&b, 4))]),
            cycle(1, None, &[1, 2], vec![(2, read(&a, 3)), (3, read(&b, 4))], h()),
            cycle(1, None, &[1, 2, 3], vec![(2, read(&a, 3)), (3, read(&b, 4))], None),
            cycle(
                1,
                Some(Cltab::default()),
                &[1, 2, 3],
                vec![(2, read(&a, 3)), (3, read(&b, 4))],
                h(),
            ),
        ];
        for (i, change) in changed.into_iter().enumerate() {
            let mut recs = recs.clone();
            recs[2] = change;
            assert_ne!(summarise(TraceMode::Hash, &recs).0, hashed, "change {i}");
        }
    }

    #[test]
    fn sink_lines_match_serde() {
        let a = clstat(&[("web", "1", GroupState::Done)]);
        let recs = [
            cycle(1, None, &[1, 2], vec![(2, read(&a, 1))], Some(Hactl::default())),
            Record::StopAll { node: 1, at: Millis(2) },
            cycle(1, None, &[1, 2], vec![(2, read(&a, 3))], Some(Hactl::default())),
        ];
        let mut sink = TraceSink::new(TraceMode::Keep, None);
        for rec in &recs {
            sink.record(rec);
        }
        let want: Vec<String> =
            recs.iter().map(|r| serde_json::to_string(r).expect("serde encodes")).collect();
        assert_eq!(sink.lines(), want.as_slice());
        assert_eq!(sink.error(), None);
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z\"\\\\é]{1,4}", any::<String>()]
    }

    fn arb_clstat() -> impl Strategy<Value = ClStat> {
        let state = prop_oneof![
            Just(GroupState::Done),
            Just(GroupState::Failed),
            text().prop_map(GroupState::Other),
        ];
        proptest::collection::btree_map(text(), (text(), state), 0..4).prop_map(|groups| ClStat {
            groups: groups
                .into_iter()
                .map(|(g, (level, state))| (g, GroupStatus { level, state }))
                .collect(),
        })
    }

    fn arb_hactl() -> impl Strategy<Value = Hactl> {
        let want = (text(), proptest::collection::vec(any::<u32>(), 0..3))
            .prop_map(|(level, preferred)| Want { level, preferred });
        proptest::collection::btree_map(text(), want, 0..3)
            .prop_map(|groups| Hactl { groups, ..Hactl::default() })
    }

    /// A node id: mostly a few small ones, so that caches are hit and
    /// missed, sometimes one too large to cache.
    fn id() -> impl Strategy<Value = u32> {
        prop_oneof![8 => 0u32..5, 1 => Just(u32::MAX)]
    }

    /// A status; `Read` names a clstat of the pool by index.
    #[derive(Debug, Clone)]
    enum Status {
        Read(usize, u64),
        Missing,
        Unreadable(String),
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            4 => (0usize..4, any::<u64>()).prop_map(|(i, age)| Status::Read(i, age)),
            1 => Just(Status::Missing),
            1 => text().prop_map(Status::Unreadable),
        ]
    }

    #[derive(Debug, Clone)]
    struct Step {
        node: u32,
        adopt: Option<Option<String>>,
        now: u64,
        members: Vec<u32>,
        nodes: BTreeMap<u32, Status>,
        /// A hactl of the pool, and whether in an `Arc` of its own.
        hactl: Option<(usize, bool)>,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            id(),
            proptest::option::weighted(0.2, proptest::option::of(text())),
            any::<u64>(),
            proptest::collection::vec(id(), 0..5),
            proptest::collection::btree_map(id(), status(), 0..5),
            proptest::option::of((0..=CACHED_HACTLS, any::<bool>())),
        )
            .prop_map(|(node, adopt, now, members, nodes, hactl)| Step {
                node,
                adopt,
                now,
                members,
                nodes,
                hactl,
            })
    }

    proptest! {
        #[test]
        fn random_cycles_match_serde(
            pool in proptest::collection::vec(arb_clstat(), 4),
            hactls in proptest::collection::vec(arb_hactl(), CACHED_HACTLS + 1),
            steps in proptest::collection::vec(step(), 1..12),
        ) {
            // Shared once, so that steps naming the same one share the Arc.
            let pool: Vec<Arc<ClStat>> = pool.into_iter().map(Arc::new).collect();
            let hactls: Vec<Arc<Hactl>> = hactls.into_iter().map(Arc::new).collect();
            let mut enc = CycleEncoder::default();
            for s in steps {
                let nodes = s.nodes.into_iter().map(|(id, st)| {
                    let st = match st {
                        Status::Read(i, age) => read(&pool[i], age),
                        Status::Missing => NodeStatus::Missing,
                        Status::Unreadable(reason) => NodeStatus::Unreadable { reason },
                    };
                    (id, st)
                });
                let obs = Observation {
                    now: Millis(s.now),
                    me: s.node,
                    members: s.members,
                    nodes: nodes.collect(),
                    hactl: s.hactl.map(|(i, own)| match own {
                        true => Arc::new((*hactls[i]).clone()),
                        false => Arc::clone(&hactls[i]),
                    }),
                };
                let adopt = s.adopt.map(|socket| Cltab { socket, ..Cltab::default() });
                let rec = Record::Cycle { node: s.node, adopt, obs };
                let mut buf = Vec::new();
                prop_assert!(enc.record(&mut buf, &rec).is_ok());
                let want = serde_json::to_vec(&rec).expect("serde encodes");
                prop_assert_eq!(String::from_utf8_lossy(&buf), String::from_utf8_lossy(&want));
            }
        }
    }
}
