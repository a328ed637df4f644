//! Writes a production node's machine inputs as a trace (`mosha --record`),
//! in the format of [`clinit_engine::trace`], so `clinit-sim replay` can
//! re-run a real incident through the same machines.
//!
//! Each record is flushed as it is written: the interesting part of an
//! incident is often just before a crash. A write error is logged once and
//! ends the recording; it never stops the node.
//!
//! A restart never overwrites a recording: the one already at FILE (the
//! incarnation before, often one killed with -9, whose recording is the
//! incident) is renamed FILE.1, an older FILE.1 becomes FILE.2, and so on
//! up to FILE.[`KEEP`] (the oldest is dropped, so a crash loop cannot fill
//! the disk), as logrotate numbers its files. Each file is a whole
//! recording with its own header: `clinit-sim replay FILE.1 --killed N`
//! verifies a killed incarnation up to its last complete record.

use clinit_engine::trace::{Header, Record};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tracing::error;

/// Earlier recordings kept beside FILE: FILE.1 (the newest) to FILE.9.
pub const KEEP: u32 = 9;

pub struct TraceWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Where the recording found at `path` was moved (FILE.1), if any.
    kept: Option<PathBuf>,
}

/// `path` with `.n` appended to its file name (`trace.jsonl.1`).
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Does the file at `path` start with a clinit trace header line? Only the
/// first 4 KiB are read (a header is one short JSON line).
fn is_recording(path: &Path) -> io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    File::open(path)?.take(4096).read_to_end(&mut head)?;
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    Ok(first.starts_with('{') && first.contains("\"format\":\"clinit-trace/"))
}

/// Move a non-empty recording at `path` to `path.1`, shifting older ones
/// up to `path.keep` (see the module doc). Returns where it went.
///
/// # Errors
/// `InvalidInput` when `path` is a directory or a non-empty file that is
/// not a clinit recording: a mistyped `--record` must never move (and,
/// nine restarts later, drop) an operator's file. Other I/O errors as the
/// OS reports them.
fn rotate(path: &Path, keep: u32) -> io::Result<Option<PathBuf>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory; --record takes a file name",
            ))
        }
        // An empty file holds no recording (not even a header).
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
    }
    if !is_recording(path)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "holds something other than a clinit recording (no clinit-trace header on its \
             first line); it is left as it is: remove it or choose another --record file",
        ));
    }
    for n in (1..keep).rev() {
        match std::fs::rename(numbered(path, n), numbered(path, n + 1)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    let first = numbered(path, 1);
    std::fs::rename(path, &first)?;
    Ok(Some(first))
}

impl TraceWriter {
    /// Create `path` and write the header line, first keeping a recording
    /// already there as `path.1` (see the module doc; [`Self::kept`]).
    pub fn create(path: &Path, header: &Header<serde_json::Value>) -> io::Result<TraceWriter> {
        let kept = rotate(path, KEEP)?;
        let mut out = BufWriter::new(File::create(path)?);
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(TraceWriter { path: path.to_path_buf(), out: Some(out), kept })
    }

    /// Where the recording that was at the path when this one was created
    /// went (`FILE.1`), if there was one.
    pub fn kept(&self) -> Option<&Path> {
        self.kept.as_deref()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_recording_keeps_the_earlier_ones_numbered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.jsonl");
        let header = Header::new("mosha", "test", None, serde_json::Value::Null);
        for i in 0..(KEEP + 3) {
            let mut w = TraceWriter::create(&path, &header).expect("create");
            // The first finds nothing; every later one keeps its forerunner.
            assert_eq!(w.kept(), (i > 0).then(|| numbered(&path, 1)).as_deref());
            // Tell the incarnations apart: the i-th writes i records.
            for _ in 0..i {
                w.write(&Record::StopAll { node: 1, at: clinit_engine::time::Millis(0) });
            }
        }
        let lines = |p: &Path| std::fs::read_to_string(p).expect("read").lines().count();
        assert_eq!(lines(&path), 1 + KEEP as usize + 2, "the newest is at FILE");
        for n in 1..=KEEP {
            // FILE.n is the n-th before the newest: it wrote (KEEP + 2 - n) records.
            assert_eq!(lines(&numbered(&path, n)), 1 + (KEEP + 2 - n) as usize, "FILE.{n}");
        }
        assert!(!numbered(&path, KEEP + 1).exists(), "at most KEEP are kept");
        // An empty file is not a recording: nothing is kept for it.
        std::fs::write(&path, "").expect("empty");
        let w = TraceWriter::create(&path, &header).expect("create");
        assert!(w.kept().is_none());
    }

    /// A mistyped `--record` (a directory, an operator's file) is refused
    /// and left untouched: rotating it would move it, and nine restarts
    /// later drop it.
    #[test]
    fn a_directory_or_a_file_that_is_no_recording_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = Header::new("mosha", "test", None, serde_json::Value::Null);
        let sub = dir.path().join("rot");
        std::fs::create_dir(&sub).expect("mkdir");
        let err = TraceWriter::create(&sub, &header).err().expect("a directory is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(sub.is_dir() && !numbered(&sub, 1).exists(), "the directory was moved");
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "important\n").expect("write");
        let err = TraceWriter::create(&notes, &header).err().expect("a plain file is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert_eq!(std::fs::read_to_string(&notes).expect("read"), "important\n");
        assert!(!numbered(&notes, 1).exists(), "the file was moved");
        // A real recording is still kept as FILE.1.
        let rec = dir.path().join("rec.jsonl");
        drop(TraceWriter::create(&rec, &header).expect("first"));
        let w = TraceWriter::create(&rec, &header).expect("second");
        assert_eq!(w.kept(), Some(numbered(&rec, 1).as_path()));
    }
}
