//! What every command-line front end needs the same way: logging set up from
//! `RUST_LOG` (colour only on a terminal) and durations given in seconds.

use clinit_engine::time::Millis;

/// Log to stderr at `RUST_LOG`'s level (default `info`); colour only when
/// stderr is a terminal, so log files stay plain text. Writes never block:
/// a full stderr pipe drops and counts lines ([`crate::nblog`]).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::nblog::LogSink::stderr())
        .init();
}

/// Run a daemon's main future on a single-threaded runtime (one task owns
/// the machine; nothing needs more). Errors are printed as `PROG: error`
/// and turn into a failing exit status.
pub fn run_daemon<E: std::fmt::Display>(
    prog: &str,
    main: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{prog}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A number of seconds, zero allowed (clap value parser).
pub fn secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

/// A positive number of seconds (clap value parser).
pub fn positive_secs(text: &str) -> Result<f64, String> {
    match secs(text) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Seconds to engine milliseconds, rounded.
pub fn millis(secs: f64) -> Millis {
    Millis((secs * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_and_convert() {
        assert_eq!(secs("0"), Ok(0.0));
        assert!(secs("-1").is_err() && secs("nan").is_err() && secs("x").is_err());
        assert!(positive_secs("0").is_err());
        assert_eq!(millis(positive_secs("0.25").expect("valid")), Millis(250));
    }
}
