//! `cargo xtask dist [DIR]`: write man pages and shell completions for the
//! three binaries under DIR (default `target/dist`): `DIR/man/*.1` and
//! `DIR/completions/{NAME.bash,_NAME,NAME.fish}`.
//!
//! `cargo xtask fuzz TARGET|all [--iters N] [--seed S] [--timeout-ms T]`:
//! mutate the corpus `fuzz/corpus/TARGET/` and check every input (see the
//! `fuzz` module). Exit 0 when every input passed, 1 on a failure (the input
//! is saved under `fuzz/failures/`), 70 on a hang, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use xtask::fuzz::{self, Target};

const USAGE: &str =
    "usage: cargo xtask dist [DIR]   (man pages and completions; DIR defaults to target/dist)
       cargo xtask fuzz TARGET|all [--iters N] [--seed S] [--timeout-ms T]
                 TARGET: cltab hactl clstat hastat trace protocol; N defaults to 1000000,
                 T (per-input bound, ms) to 2000";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fuzz") {
        return match fuzz_args(&args[1..]) {
            Some((targets, iters, seed, timeout)) => fuzz_main(&targets, iters, seed, timeout),
            None => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let out = match args.as_slice() {
        [verb] if verb == "dist" => PathBuf::from("target/dist"),
        [verb, dir] if verb == "dist" => PathBuf::from(dir),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match xtask::generate(&out) {
        Ok(files) => {
            for f in &files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fuzz_args(args: &[String]) -> Option<(Vec<Target>, u64, u64, Duration)> {
    let (name, mut rest) = args.split_first()?;
    let targets = if name == "all" { Target::ALL.to_vec() } else { vec![Target::from_name(name)?] };
    let (mut iters, mut seed, mut timeout_ms) = (1_000_000u64, 1u64, 2000u64);
    while let [flag, value, tail @ ..] = rest {
        let value: u64 = value.parse().ok()?;
        match flag.as_str() {
            "--iters" => iters = value,
            "--seed" => seed = value,
            "--timeout-ms" => timeout_ms = value,
            _ => return None,
        }
        rest = tail;
    }
    rest.is_empty().then_some((targets, iters, seed, Duration::from_millis(timeout_ms)))
}

fn fuzz_main(targets: &[Target], iters: u64, seed: u64, timeout: Duration) -> ExitCode {
    // `cargo xtask` runs in the workspace root; the corpus lives in fuzz/.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for &target in targets {
        let opts = fuzz::Options { target, iters, seed, timeout, dir: dir.clone() };
        let result = fuzz::run(&opts, |n| eprint!("\rfuzz {}: {n} inputs", target.name()));
        eprint!("\r");
        match result {
            Ok(s) => println!(
                "fuzz {}: {} inputs ({} accepted) in {:.1} s, {:.0}/s, slowest input {:.1} ms, {} outcomes: {}",
                target.name(),
                s.inputs,
                s.accepted,
                s.elapsed.as_secs_f64(),
                s.inputs as f64 / s.elapsed.as_secs_f64().max(1e-9),
                s.slowest.as_secs_f64() * 1e3,
                s.outcomes.len(),
                s.outcomes.join(" ")
            ),
            Err(e) => {
                eprintln!("fuzz {}: {e}", target.name());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
