//! `cargo xtask dist [DIR]`: write man pages and shell completions for the
//! three binaries under DIR (default `target/dist`): `DIR/man/*.1` and
//! `DIR/completions/{NAME.bash,_NAME,NAME.fish}`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask dist [DIR]   (man pages and completions; DIR defaults to target/dist)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
