//! The process vocabulary of simulated cltabs.
//!
//! A simulated child does not run anything: its cltab command says how long
//! it lives, how it ends and how it reacts to signals, so a scenario can say
//! "this test fails on nodes 2 and 5" or "this server crashes every 30 s"
//! in one word. Commands are parsed when the scenario is built: an unknown
//! word is a configuration error, never a panic in the middle of a run.
//!
//! | command | behaviour |
//! |---|---|
//! | `run` | runs until signalled; exits on SIGINT after 100 ms |
//! | `stubborn` | runs until signalled; ignores SIGINT, exits on SIGTERM |
//! | `hang` | runs until SIGKILL |
//! | `sleep D` | exits 0 after D (`sleep 3`, `sleep 500ms`) |
//! | `exit N` | exits with code N at once |
//! | `fail-on 2,5` | exits 1 at once on nodes 2 and 5, 0 elsewhere |
//! | `pass-on 3` | exits 0 at once on node 3, 1 elsewhere |
//! | `crash-after D` | runs D, then exits 1 |
//! | `flaky P` | exits at once, 1 with probability P (seeded), else 0 |
//!
//! Every command dies at once on SIGKILL; `run`, `sleep`, `crash-after`
//! die on any signal.

use crate::units::{parse_duration, DurationError};
use clinit_engine::process::{ExitStatus, Signal};
use clinit_engine::time::Millis;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// How long a `run` takes to exit after SIGINT (a short graceful stop).
pub const GRACEFUL_STOP: Millis = Millis(100);

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run,
    Stubborn,
    Hang,
    Sleep(Millis),
    Exit(i32),
    FailOn(Vec<u32>),
    PassOn(Vec<u32>),
    CrashAfter(Millis),
    Flaky(f64),
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum CommandError {
    #[error("unknown simulated command {0:?} (known: run, stubborn, hang, sleep D, exit N, fail-on NODES, pass-on NODES, crash-after D, flaky P)")]
    Unknown(String),
    #[error("command {command:?}: {why}")]
    BadArgument { command: String, why: String },
    #[error("command {command:?}: {source}")]
    Duration {
        command: String,
        #[source]
        source: DurationError,
    },
}

impl Command {
    pub fn parse(text: &str) -> Result<Command, CommandError> {
        let mut words = text.split_whitespace();
        let word = words.next().unwrap_or("");
        let arg = words.next();
        let extra = words.next();
        let bad =
            |why: &str| CommandError::BadArgument { command: text.to_string(), why: why.into() };
        if extra.is_some() {
            return Err(bad("too many arguments"));
        }
        fn need<'a>(arg: Option<&'a str>, text: &str) -> Result<&'a str, CommandError> {
            arg.ok_or_else(|| CommandError::BadArgument {
                command: text.to_string(),
                why: "missing argument".into(),
            })
        }
        let no_arg = |c: Command| if arg.is_some() { Err(bad("takes no argument")) } else { Ok(c) };
        let dur = |arg: Option<&str>| -> Result<Millis, CommandError> {
            parse_duration(need(arg, text)?)
                .map_err(|source| CommandError::Duration { command: text.to_string(), source })
        };
        let nodes = |arg: Option<&str>| -> Result<Vec<u32>, CommandError> {
            need(arg, text)?
                .split(',')
                .map(|n| n.trim().parse::<u32>().map_err(|_| bad("expected node numbers like 2,5")))
                .collect()
        };
        match word {
            "run" => no_arg(Command::Run),
            "stubborn" => no_arg(Command::Stubborn),
            "hang" => no_arg(Command::Hang),
            "sleep" => Ok(Command::Sleep(dur(arg)?)),
            "exit" => need(arg, text)?
                .parse()
                .map(Command::Exit)
                .map_err(|_| bad("expected an exit code")),
            "fail-on" => Ok(Command::FailOn(nodes(arg)?)),
            "pass-on" => Ok(Command::PassOn(nodes(arg)?)),
            "crash-after" => Ok(Command::CrashAfter(dur(arg)?)),
            "flaky" => match need(arg, text)?.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(Command::Flaky(p)),
                _ => Err(bad("expected a probability between 0 and 1")),
            },
            _ => Err(CommandError::Unknown(text.to_string())),
        }
    }

    /// How the child ends if nobody signals it: after how long, and how.
    /// `None`: it runs until signalled.
    pub fn natural_end(&self, node: u32, rng: &mut ChaCha8Rng) -> Option<(Millis, ExitStatus)> {
        let code = |fail: bool| ExitStatus::Code(i32::from(fail));
        match self {
            Command::Run | Command::Stubborn | Command::Hang => None,
            Command::Sleep(d) => Some((*d, ExitStatus::Code(0))),
            Command::Exit(c) => Some((Millis::ZERO, ExitStatus::Code(*c))),
            Command::FailOn(nodes) => Some((Millis::ZERO, code(nodes.contains(&node)))),
            Command::PassOn(nodes) => Some((Millis::ZERO, code(!nodes.contains(&node)))),
            Command::CrashAfter(d) => Some((*d, ExitStatus::Code(1))),
            Command::Flaky(p) => Some((Millis::ZERO, code(rng.random_bool(*p)))),
        }
    }

    /// How long after `signal` the child exits (`None`: it ignores it).
    pub fn on_signal(&self, signal: Signal) -> Option<Millis> {
        match (self, signal) {
            (_, Signal::Kill) => Some(Millis::ZERO),
            (Command::Hang, _) => None,
            (Command::Stubborn, Signal::Int) => None,
            (Command::Run, Signal::Int) => Some(GRACEFUL_STOP),
            _ => Some(Millis::ZERO),
        }
    }

    /// Whether this command, as a `test` entry, passes on `node`
    /// (`None`: it depends on chance).
    pub fn passes_on(&self, node: u32) -> Option<bool> {
        match self {
            Command::Exit(c) => Some(*c == 0),
            Command::FailOn(nodes) => Some(!nodes.contains(&node)),
            Command::PassOn(nodes) => Some(nodes.contains(&node)),
            Command::Sleep(_) => Some(true),
            Command::CrashAfter(_) => Some(false),
            Command::Flaky(p) if *p <= 0.0 => Some(true),
            Command::Flaky(p) if *p >= 1.0 => Some(false),
            Command::Flaky(_) => None,
            // A test that never exits never passes (the group stays in transition).
            Command::Run | Command::Stubborn | Command::Hang => Some(false),
        }
    }
}

/// The number a signal kills with (for [`ExitStatus::Signaled`]).
pub fn signal_number(signal: Signal) -> i32 {
    match signal {
        Signal::Int => 2,
        Signal::Term => 15,
        Signal::Kill => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn vocabulary() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(Command::parse("run"), Ok(Command::Run));
        assert_eq!(Command::parse("sleep 3"), Ok(Command::Sleep(Millis(3000))));
        let fail = Command::parse("fail-on 2,5").expect("parses");
        assert_eq!(fail.natural_end(2, &mut rng), Some((Millis(0), ExitStatus::Code(1))));
        assert_eq!(fail.natural_end(3, &mut rng), Some((Millis(0), ExitStatus::Code(0))));
        assert_eq!(fail.passes_on(5), Some(false));
        assert_eq!(
            Command::parse("crash-after 30s").expect("parses").natural_end(1, &mut rng),
            Some((Millis(30_000), ExitStatus::Code(1)))
        );
        assert_eq!(Command::Hang.on_signal(Signal::Term), None);
        assert_eq!(Command::Run.on_signal(Signal::Int), Some(GRACEFUL_STOP));
        assert_eq!(Command::Stubborn.on_signal(Signal::Int), None);
    }

    #[test]
    fn bad_commands_are_errors() {
        for bad in ["", "/bin/true", "sleep", "sleep x", "exit", "fail-on a", "flaky 2", "run 5"] {
            assert!(Command::parse(bad).is_err(), "{bad:?}");
        }
    }
}
