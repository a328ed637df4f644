//! The fuzz targets and the property each input must satisfy.
//!
//! Every target calls the parser the programs themselves call on that
//! input (the daemon's cltab read, mosha's replicated-copy and clstat reads,
//! the status tools' hastat read, the simulator's trace reader, the
//! daemon's request parser and the client's reply decoder). Properties:
//! * never panic, never hang (checked by the harness);
//! * an accepted text renders back to a text that parses to the same value
//!   (parse∘render∘parse = parse), where the format has a renderer;
//! * an error names `file:line`, and carries no raw control character (a
//!   newline or escape sequence from the input must not reach a log line or
//!   a terminal unescaped: issue 10 item 11).

use clinit_backends::protocol::{encode_request, parse_request, Reply};
use clinit_backends::shared::HastatDoc;
use clinit_engine::cltab::Cltab;
use clinit_engine::cluster::input::{ContentId, FileReport, FileVersion, SharedFile, WallMs};
use clinit_engine::cluster::judge_clstat;
use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::replicate::parse_copy;
use clinit_engine::monitor::NodeStatus;
use clinit_engine::status::ClStat;
use std::sync::Arc;

/// One fuzz target (its name is the corpus directory's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Cltab,
    Hactl,
    Clstat,
    Hastat,
    Trace,
    Protocol,
}

/// The name files are reported under in error messages.
const FILE: &str = "fuzz.in";

/// What a target says about one input: `Ok(key)` where `key` is `ok` or the
/// kind of the (acceptable) error, or `Err(violation)`.
pub type Verdict = Result<String, String>;

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Cltab,
        Target::Hactl,
        Target::Clstat,
        Target::Hastat,
        Target::Trace,
        Target::Protocol,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Cltab => "cltab",
            Target::Hactl => "hactl",
            Target::Clstat => "clstat",
            Target::Hastat => "hastat",
            Target::Trace => "trace",
            Target::Protocol => "protocol",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Tokens of the format, inserted by the mutator.
    pub fn dictionary(self) -> &'static [&'static [u8]] {
        match self {
            Target::Cltab => &[
                b":::socket:",
                b":::clstat:",
                b":::log:",
                b":::",
                b"once",
                b"wait",
                b"respawn",
                b"off",
                b"test",
                b"exec sleep 1",
                b"g:t:12:",
                b"\n#",
            ],
            Target::Hactl => &[b"web 2 1,2,3\n", b" 1,", b"stop", b"# c", b",", b" 4294967296"],
            Target::Clstat => &[
                b"Cluster::Init::Group ",
                b"Cluster::Init::Other x",
                b" DONE",
                b" FAILED",
                b" STOPPING",
                b" CONFIGURED",
                b" stop",
            ],
            Target::Hastat | Target::Trace | Target::Protocol => &[
                b"\"op\":",
                b"\"tell\"",
                b"\"status\"",
                b"\"shutdown\"",
                b"\"reread\"",
                b"\"group\":",
                b"\"level\":",
                b"\"ok\":true",
                b"\"msg\":",
                b"null",
                b"true",
                b"\"node\":",
                b"\"groups\":{",
                b"\"format\":",
                b"\"at\":",
                b"\"members\":[1,2]",
                b"\"state\":\"DONE\"",
                b"1.5e3",
            ],
        }
    }

    /// Run one input and check the properties.
    pub fn check(self, input: &[u8]) -> Verdict {
        match self {
            Target::Cltab => cltab(input),
            Target::Hactl => hactl(input),
            Target::Clstat => clstat(input),
            Target::Hastat => hastat(input),
            Target::Trace => trace(input),
            Target::Protocol => protocol(input),
        }
    }
}

/// The variant name of an error kind's `Debug` text (`UnknownMode("x")` →
/// `UnknownMode`).
fn kind_key(debug: &str) -> String {
    debug.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("").to_string()
}

/// An error message must start `FILE:LINE: ` with `1 <= LINE <= lines`, and
/// contain no control character.
fn located(msg: &str, lines: usize) -> Result<(), String> {
    let rest = msg
        .strip_prefix(FILE)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| format!("error does not name the file: {msg:?}"))?;
    let (line, _) =
        rest.split_once(':').ok_or_else(|| format!("error does not name a line: {msg:?}"))?;
    let line: usize = line.parse().map_err(|_| format!("error does not name a line: {msg:?}"))?;
    if line == 0 || line > lines {
        return Err(format!("error names line {line} of a {lines}-line input: {msg:?}"));
    }
    no_control(msg)
}

fn no_control(msg: &str) -> Result<(), String> {
    match msg.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("raw control character {c:?} in the message {msg:?}")),
        None => Ok(()),
    }
}

/// Lines of an input as an editor counts them (a final line without `\n`
/// counts; an empty input has one, empty, line).
fn line_count(input: &[u8]) -> usize {
    input.iter().filter(|&&b| b == b'\n').count() + 1
}

fn cltab(input: &[u8]) -> Verdict {
    match Cltab::parse_bytes(input, FILE) {
        Ok(tab) => {
            let text = tab.render();
            let again = Cltab::parse(&text, FILE)
                .map_err(|e| format!("the rendering of an accepted table is refused: {e}"))?;
            // Line numbers change (comments are not rendered); all else may not.
            let strip = |t: &Cltab| {
                let mut t = t.clone();
                t.entries.iter_mut().for_each(|e| std::sync::Arc::make_mut(e).line = 0);
                t
            };
            if strip(&again) != strip(&tab) {
                return Err(format!("parse∘render∘parse != parse:\n{tab:?}\n{again:?}"));
            }
            Ok("ok".into())
        }
        Err(errors) => {
            let first = errors.0.first().ok_or("an error with no line")?;
            for e in &errors.0 {
                located(&e.to_string(), line_count(input))?;
            }
            Ok(kind_key(&format!("{:?}", first.kind)))
        }
    }
}

fn hactl(input: &[u8]) -> Verdict {
    match parse_copy::<Hactl>(input, FILE) {
        Ok(hactl) => {
            let text = hactl.render();
            let again = parse_copy::<Hactl>(text.as_bytes(), FILE)
                .map_err(|e| format!("the rendering of an accepted hactl is refused: {e}"))?;
            if again != hactl {
                return Err(format!("parse∘render∘parse != parse:\n{hactl:?}\n{again:?}"));
            }
            Ok("ok".into())
        }
        Err(msg) => {
            for line in msg.lines() {
                located(line, line_count(input))?;
            }
            let kind = msg.split(": ").nth(1).unwrap_or("").split(' ').next().unwrap_or("");
            Ok(format!("err-{kind}"))
        }
    }
}

fn clstat(input: &[u8]) -> Verdict {
    let read = |bytes: &[u8]| {
        let version =
            FileVersion { mtime: WallMs(0), id: ContentId(1), bytes: Some(Arc::from(bytes)) };
        let report = FileReport {
            node: 1,
            file: SharedFile::Clstat,
            path: FILE.into(),
            read: Ok(Some(version)),
        };
        judge_clstat(1, WallMs(0), report)
    };
    match read(input) {
        NodeStatus::Read { clstat, .. } => {
            let text = clstat.render();
            let (again, bad) = ClStat::parse_strict(&text);
            if !bad.is_empty() || again != *clstat {
                return Err(format!(
                    "parse∘render∘parse != parse (bad lines {bad:?}):\n{clstat:?}\n{again:?}"
                ));
            }
            Ok("ok".into())
        }
        NodeStatus::Unreadable { reason } => {
            located(&reason, line_count(input))?;
            Ok(format!("err-{}", reason.rsplit(": ").next().unwrap_or("")))
        }
        NodeStatus::Missing => Err("a file with content read as missing".into()),
    }
}

fn hastat(input: &[u8]) -> Verdict {
    match serde_json::from_slice::<HastatDoc>(input) {
        Ok(doc) => {
            let text = serde_json::to_vec(&doc).map_err(|e| format!("cannot render: {e}"))?;
            let mut again: HastatDoc = serde_json::from_slice(&text)
                .map_err(|e| format!("the rendering of an accepted hastat is refused: {e}"))?;
            // serde_json (without its `float_roundtrip` feature) may parse
            // a printed f64 one ulp off: `written` (seconds since the epoch)
            // is equal when within a few ulps.
            if (again.written - doc.written).abs() <= doc.written.abs() * 4.0 * f64::EPSILON {
                again.written = doc.written;
            }
            let text2 = serde_json::to_vec(&again).map_err(|e| format!("cannot render: {e}"))?;
            if text2 != text {
                return Err("parse∘render∘parse != parse".into());
            }
            Ok("ok".into())
        }
        Err(e) => {
            if e.line() == 0 {
                return Err(format!("JSON error without a line: {e}"));
            }
            Ok(format!("err-{:?}", e.classify()))
        }
    }
}

fn trace(input: &[u8]) -> Verdict {
    use clinit_sim::trace::{read_trace, TraceError};
    match read_trace(std::io::Cursor::new(input)) {
        Ok(trace) => {
            let mut text = serde_json::to_vec(&trace.header).map_err(|e| e.to_string())?;
            for rec in &trace.records {
                text.push(b'\n');
                text.extend(serde_json::to_vec(rec).map_err(|e| e.to_string())?);
            }
            let again = read_trace(std::io::Cursor::new(&text))
                .map_err(|e| format!("the rendering of an accepted trace is refused: {e}"))?;
            if again.records != trace.records {
                return Err("parse∘render∘parse != parse (records)".into());
            }
            Ok("ok".into())
        }
        Err(e) => {
            let msg = e.to_string();
            match &e {
                TraceError::Line { line, .. } if *line == 0 || *line > line_count(input) => {
                    return Err(format!(
                        "error names line {line} of a {}-line input",
                        line_count(input)
                    ))
                }
                TraceError::Io(_) => {
                    return Err(format!("an I/O error reading bytes from memory: {msg}"))
                }
                _ => {}
            }
            no_control(&msg)?;
            Ok(kind_key(&format!("{e:?}")))
        }
    }
}

fn protocol(input: &[u8]) -> Verdict {
    // The client's side: any reply bytes decode or fail, never panic.
    let _ = serde_json::from_slice::<Reply>(input);
    match parse_request(input) {
        Ok(req) => {
            let again = parse_request(&encode_request(&req))
                .map_err(|e| format!("the encoding of an accepted request is refused: {e}"))?;
            if again != req {
                return Err(format!("parse∘encode∘parse != parse: {req:?} {again:?}"));
            }
            Ok("ok".into())
        }
        Err(e) => {
            // The text goes back to the client, which prints it.
            no_control(&e.to_string())?;
            Ok(kind_key(&format!("{e:?}")))
        }
    }
}
