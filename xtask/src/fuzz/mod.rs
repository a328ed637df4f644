//! A mutation fuzzer that runs on stable Rust (`cargo fuzz` needs nightly).
//!
//! `cargo xtask fuzz TARGET [--iters N] [--seed S] [--timeout-ms T]` takes
//! the checked-in corpus `fuzz/corpus/TARGET/*`, mutates it AFL-style
//! ("havoc": bit flips, random and interesting bytes, deletions,
//! duplications, splices with other corpus entries, dictionary tokens) and
//! feeds each mutant to the target's property check
//! ([`targets::Target::check`]). A target passes an input when the parser
//! answers `Ok` or a clear error and the property holds (errors name
//! `file:line`, parse∘render∘parse = parse); it fails on a panic, on a
//! property violation, or when one input takes longer than the per-input
//! bound (a hang).
//!
//! There is no coverage instrumentation on stable, so the feedback is the
//! *outcome*: a mutant whose outcome key (`ok`, or the error's kind) was
//! never seen joins the in-memory pool, as do a few accepted inputs, so
//! mutation keeps reaching the deeper, accepted shapes of each format.
//!
//! Bounded memory: inputs are capped at [`MAX_INPUT`] bytes and the pool at
//! [`MAX_POOL`] entries. Deterministic: the same seed gives the same inputs.

pub mod mutate;
pub mod targets;

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use targets::Target;

/// Largest input fed to a target, in bytes (64 KiB: the socket protocol's
/// own request limit, and well above any realistic config file line).
pub const MAX_INPUT: usize = 64 * 1024;

/// Most inputs kept in the in-memory pool (corpus + discoveries).
pub const MAX_POOL: usize = 4096;

/// How one run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Number of mutated inputs to run (the corpus itself runs too, first).
    pub iters: u64,
    pub seed: u64,
    /// Per-input time bound: an input still running after this is a hang.
    pub timeout: Duration,
    /// Directory holding `corpus/<target>/`; failing inputs are written to
    /// `<dir>/failures/<target>-<n>`.
    pub dir: PathBuf,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Inputs run, corpus included.
    pub inputs: u64,
    /// Inputs the target accepted (`Ok`).
    pub accepted: u64,
    /// Distinct outcome keys seen (`ok`, each error kind).
    pub outcomes: Vec<String>,
    /// Longest single input's run time.
    pub slowest: Duration,
    pub elapsed: Duration,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error("cannot read the corpus {}: {source}", .path.display())]
    Corpus {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the corpus {} is empty", .0.display())]
    EmptyCorpus(PathBuf),
    #[error("input #{n} failed ({why}); saved to {}", .saved.display())]
    Failed { n: u64, why: String, saved: PathBuf },
}

/// Read `dir/corpus/<target>/*` (regular files, sorted by name).
pub fn load_corpus(dir: &Path, target: Target) -> Result<Vec<Vec<u8>>, FuzzError> {
    let path = dir.join("corpus").join(target.name());
    let err = |source| FuzzError::Corpus { path: path.clone(), source };
    let mut names: Vec<PathBuf> = std::fs::read_dir(&path)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut corpus = Vec::with_capacity(names.len());
    for name in names {
        let mut bytes = std::fs::read(&name)
            .map_err(|source| FuzzError::Corpus { path: name.clone(), source })?;
        bytes.truncate(MAX_INPUT);
        corpus.push(bytes);
    }
    if corpus.is_empty() {
        return Err(FuzzError::EmptyCorpus(path));
    }
    Ok(corpus)
}

/// Shared between the fuzzing loop and its watchdog.
struct Progress {
    /// Number of the input now running.
    current: AtomicU64,
    /// Set by the loop when it is done.
    done: AtomicBool,
    /// The input now running (kept so a hang can be saved).
    input: Mutex<Vec<u8>>,
}

/// Run `opts.iters` mutants of the corpus through the target. `report` is
/// called every ~second of work with the count so far (for a progress line).
pub fn run(opts: &Options, mut report: impl FnMut(u64)) -> Result<Summary, FuzzError> {
    let corpus = load_corpus(&opts.dir, opts.target)?;
    let progress = Arc::new(Progress {
        current: AtomicU64::new(0),
        done: AtomicBool::new(false),
        input: Mutex::new(Vec::new()),
    });
    let watchdog = spawn_watchdog(Arc::clone(&progress), opts.clone());
    let result = fuzz_loop(opts, corpus, &progress, &mut report);
    progress.done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    result
}

/// A thread that ends the process when one input runs past the bound: a
/// hung parser cannot be stopped from outside its thread, and a hang is
/// exactly the failure this harness looks for. The input is saved first.
fn spawn_watchdog(progress: Arc<Progress>, opts: Options) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = (opts.timeout / 10).max(Duration::from_millis(5));
        let mut last = u64::MAX;
        let mut since = Instant::now();
        while !progress.done.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            let now = progress.current.load(Ordering::SeqCst);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() > opts.timeout {
                let input = progress.input.lock().map(|i| i.clone()).unwrap_or_default();
                let saved = save_failure(&opts.dir, opts.target, now, &input);
                eprintln!(
                    "xtask fuzz {}: input #{now} still running after {:?} (hang); saved to {}",
                    opts.target.name(),
                    opts.timeout,
                    saved.display()
                );
                std::process::exit(70);
            }
        }
    })
}

fn fuzz_loop(
    opts: &Options,
    corpus: Vec<Vec<u8>>,
    progress: &Progress,
    report: &mut impl FnMut(u64),
) -> Result<Summary, FuzzError> {
    let started = Instant::now();
    let mut rng = mutate::Rng::new(opts.seed);
    let dict = opts.target.dictionary();
    let mut pool = corpus.clone();
    let mut seen: std::collections::BTreeSet<String> = Default::default();
    let mut summary = Summary {
        inputs: 0,
        accepted: 0,
        outcomes: Vec::new(),
        slowest: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    let mut last_report = Instant::now();
    let total = corpus.len() as u64 + opts.iters;
    let mut input = Vec::with_capacity(MAX_INPUT);
    for n in 0..total {
        input.clear();
        if let Some(seed_input) = corpus.get(n as usize) {
            input.extend_from_slice(seed_input);
        } else {
            let base = &pool[rng.below(pool.len())];
            input.extend_from_slice(base);
            mutate::havoc(&mut rng, &mut input, &pool, dict, MAX_INPUT);
        }
        if let Ok(mut slot) = progress.input.lock() {
            slot.clear();
            slot.extend_from_slice(&input);
        }
        progress.current.store(n, Ordering::SeqCst);
        let t0 = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| opts.target.check(&input)));
        let took = t0.elapsed();
        summary.slowest = summary.slowest.max(took);
        summary.inputs += 1;
        let key = match outcome {
            Ok(Ok(key)) => key,
            Ok(Err(violation)) => return Err(fail(opts, n, &input, violation)),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string payload".into());
                return Err(fail(opts, n, &input, format!("panic: {msg}")));
            }
        };
        if key == "ok" {
            summary.accepted += 1;
        }
        let new_key = seen.insert(key.clone());
        // Keep what reached a new outcome, and now and then an accepted
        // input, so mutation explores from valid shapes too.
        if (new_key || (key == "ok" && rng.below(64) == 0)) && input.len() <= MAX_INPUT {
            if pool.len() < MAX_POOL {
                pool.push(input.clone());
            } else {
                let slot = corpus.len() + rng.below(MAX_POOL - corpus.len());
                pool[slot] = input.clone();
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            report(summary.inputs);
            last_report = Instant::now();
        }
    }
    summary.outcomes = seen.into_iter().collect();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn fail(opts: &Options, n: u64, input: &[u8], why: String) -> FuzzError {
    let saved = save_failure(&opts.dir, opts.target, n, input);
    FuzzError::Failed { n, why, saved }
}

/// Write a failing input to `dir/failures/<target>-<n>` (best effort: the
/// failure is reported either way).
fn save_failure(dir: &Path, target: Target, n: u64, input: &[u8]) -> PathBuf {
    let failures = dir.join("failures");
    let path = failures.join(format!("{}-{n}", target.name()));
    let _ = std::fs::create_dir_all(&failures);
    let _ = std::fs::write(&path, input);
    path
}
