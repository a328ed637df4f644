//! `clinit log GROUP[:TAG] [-f] [-n N]`: read the per-entry log files the
//! daemon writes ([`crate::childlog`]), rotated ones included, and follow
//! them across rotation as `tail -F` does.
//!
//! Lines of several entries (a whole group) are merged by their time
//! prefix, which sorts as text (RFC 3339 UTC with milliseconds).

use crate::childlog::{file_component, log_path, rotated_path};
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One log line as `clinit log` prints it. The files keep exactly what the
/// child wrote; the operator's terminal gets control characters escaped
/// (`\u{1b}`, `\0`, `\r`; a tab is kept), so a child cannot send escape
/// sequences to it, and invalid UTF-8 shown as U+FFFD.
pub fn printable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    if text.chars().any(|c| c.is_control() && c != '\t') {
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.into_owned()
    }
}

/// How often `-f` looks for new lines and for a rotation.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Most rotated files looked at per entry (more than any `--log-keep`
/// an operator is likely to set; missing ones are skipped).
const MAX_ROTATED: u32 = 100;

/// The current log files of `group` (every entry) or of `group:tag` that
/// exist (or whose rotated `.1` does).
pub fn entry_files(dir: &Path, group: &str, tag: Option<&str>) -> io::Result<Vec<PathBuf>> {
    if let Some(tag) = tag {
        let p = log_path(dir, group, tag);
        let there = p.exists() || rotated_path(&p, 1).exists();
        return Ok(if there { vec![p] } else { Vec::new() });
    }
    let gdir = dir.join(file_component(group));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&gdir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every line of one entry's log, oldest first (rotated files, then the
/// current one).
fn entry_lines(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in (1..=MAX_ROTATED).rev() {
        if let Ok(f) = File::open(rotated_path(path, n)) {
            read_into(f, &mut out)?;
        }
    }
    match File::open(path) {
        Ok(f) => read_into(f, &mut out)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

fn read_into(f: File, out: &mut Vec<String>) -> io::Result<()> {
    for line in io::BufReader::new(f).split(b'\n') {
        out.push(printable(&line?));
    }
    Ok(())
}

/// The last `n` lines (all with `None`) of `files`, merged by time.
pub fn last_lines(files: &[PathBuf], n: Option<usize>) -> io::Result<Vec<String>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(entry_lines(f)?);
    }
    if files.len() > 1 {
        // Stable: lines of one entry with the same stamp keep their order.
        all.sort_by(|a, b| stamp(a).cmp(stamp(b)));
    }
    if let Some(n) = n {
        let skip = all.len().saturating_sub(n);
        all.drain(..skip);
    }
    Ok(all)
}

fn stamp(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

/// One followed file: where we are in the file the path named when we
/// opened it.
struct Followed {
    path: PathBuf,
    file: Option<(File, u64)>,
    partial: Vec<u8>,
}

impl Followed {
    /// Open at the end (what was there is printed already).
    fn at_end(path: PathBuf) -> Followed {
        let file = File::open(&path).ok().and_then(|mut f| {
            let ino = f.metadata().ok()?.ino();
            f.seek(SeekFrom::End(0)).ok()?;
            Some((f, ino))
        });
        Followed { path, file, partial: Vec::new() }
    }

    /// Complete new lines; after a rotation, the rest of the old file,
    /// then any file rotated since (when several rotations happened between
    /// two polls), then the new file from its start.
    fn poll(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        if let Some((f, _)) = &mut self.file {
            f.read_to_end(&mut self.partial)?;
        }
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        let rotated = match (&self.file, current) {
            (Some((_, ino)), Some(now)) => *ino != now,
            (None, Some(_)) => true,
            _ => false,
        };
        if rotated {
            if let Some((_, old)) = &self.file {
                // Rotated files newer than the one we had: those below its
                // new number (or all kept ones, if it was dropped already).
                let numbered: Vec<(u32, u64)> = (1..=MAX_ROTATED)
                    .map_while(|n| {
                        std::fs::metadata(rotated_path(&self.path, n)).ok().map(|m| (n, m.ino()))
                    })
                    .collect();
                let below = numbered
                    .iter()
                    .find(|(_, ino)| ino == old)
                    .map_or(numbered.len() as u32 + 1, |(n, _)| *n);
                for n in (1..below).rev() {
                    if let Ok(mut f) = File::open(rotated_path(&self.path, n)) {
                        f.read_to_end(&mut self.partial)?;
                    }
                }
            }
            self.file = None;
            if let Ok(mut f) = File::open(&self.path) {
                let ino = f.metadata()?.ino();
                f.read_to_end(&mut self.partial)?;
                self.file = Some((f, ino));
            }
        }
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            out.push(printable(&line[..nl]));
        }
        Ok(())
    }
}

/// Print the last `n` lines of `files`, then (with `follow`) new lines as
/// they come, until the output is closed. `files` are re-listed by
/// `relist` on every poll, so a group's entry started later is followed too.
pub fn show(
    files: Vec<PathBuf>,
    n: Option<usize>,
    follow: bool,
    relist: impl Fn() -> Vec<PathBuf>,
) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for line in last_lines(&files, n)? {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut followed: Vec<Followed> = files.into_iter().map(Followed::at_end).collect();
    loop {
        std::thread::sleep(FOLLOW_POLL);
        for p in relist() {
            if !followed.iter().any(|f| f.path == p) {
                // New since we started: from its beginning.
                followed.push(Followed { path: p, file: None, partial: Vec::new() });
            }
        }
        let mut lines = Vec::new();
        for f in &mut followed {
            f.poll(&mut lines)?;
        }
        lines.sort_by(|a, b| stamp(a).cmp(stamp(b)));
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
}
