//! Property tests of the settings-file reader (`cli::config_args`, used by
//! `mosha --config`): any text gives flags or an error, never a panic; a
//! file of valid settings gives flags that clap reads back as the values.

use clinit_backends::cli::config_args;
use proptest::prelude::*;
use std::path::Path;

fn command() -> clap::Command {
    clap::Command::new("t")
        .args_override_self(true)
        .arg(clap::Arg::new("timeout").long("timeout"))
        .arg(clap::Arg::new("mfsbase").long("mfsbase"))
        .arg(clap::Arg::new("stomith-grace").long("stomith-grace"))
        .arg(clap::Arg::new("init").long("init").action(clap::ArgAction::SetTrue))
}

proptest! {
    #[test]
    fn any_text_is_flags_or_an_error(text in "[ -~\n]{0,80}") {
        if let Ok(flags) = config_args(&command(), Path::new("m.toml"), &text, &[]) {
            for f in flags {
                prop_assert!(f.to_string_lossy().starts_with("--"));
            }
        }
    }

    #[test]
    fn valid_settings_read_back(
        timeout in 1u32..10_000,
        base in "[a-zA-Z0-9/_. -]{0,20}",
        grace in 0.0f64..1e6,
        init in any::<bool>(),
        override_timeout in prop::option::of(1u32..100),
    ) {
        let text = format!(
            "timeout = {timeout}\nmfsbase = {}\nstomith_grace = {grace:?}\ninit = {init}\n",
            toml_string(&base)
        );
        let flags = config_args(&command(), Path::new("m.toml"), &text, &[])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut argv = vec!["t".to_string()];
        argv.extend(flags.iter().map(|f| f.to_string_lossy().into_owned()));
        if let Some(t) = override_timeout {
            argv.push(format!("--timeout={t}"));
        }
        let m = command().try_get_matches_from(argv).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want_timeout = override_timeout.unwrap_or(timeout).to_string();
        prop_assert_eq!(m.get_one::<String>("timeout"), Some(&want_timeout));
        prop_assert_eq!(m.get_one::<String>("mfsbase"), Some(&base));
        let got: f64 = m.get_one::<String>("stomith-grace").expect("grace").parse().expect("number");
        prop_assert_eq!(got, grace);
        prop_assert_eq!(m.get_flag("init"), init);
    }
}

/// A TOML basic string for `s` (no control characters in the strategy).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
