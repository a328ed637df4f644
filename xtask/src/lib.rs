//! Build chores: man pages (`clap_mangen`) and shell completions
//! (`clap_complete`) for `clinit`, `mosha` and `clinit-sim`; and the
//! stable-Rust fuzzer of the parsers ([`fuzz`]).
//!
//! The binaries' own source files are compiled here as modules, so the
//! generated files come from the very argument definitions the programs
//! parse with: a flag added to a binary shows up in its man page and
//! completions with no second list to keep in step.

pub mod fuzz;

use clap::CommandFactory;
use std::io;
use std::path::{Path, PathBuf};

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../src/bin/clinit.rs"]
mod clinit_bin;

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../src/bin/mosha.rs"]
mod mosha_bin;

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../src/bin/clinit-sim.rs"]
mod sim_bin;

/// The command-line definitions of the three binaries.
pub fn commands() -> Vec<clap::Command> {
    vec![clinit_bin::Args::command(), mosha_bin::Args::command(), sim_bin::Cli::command()]
}

/// A generated file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", .path.display())]
pub struct GenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Shells that get completion scripts: `NAME.bash`, `_NAME` (zsh) and
/// `NAME.fish`, the names each shell's completion directory expects.
const SHELLS: [clap_complete::Shell; 3] =
    [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish];

/// Write `out/man/*.1` (one page per program and per subcommand, e.g.
/// `clinit-status.1`) and `out/completions/*`. Returns every file written.
pub fn generate(out: &Path) -> Result<Vec<PathBuf>, GenError> {
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).map_err(|source| GenError { path: dir.clone(), source })?;
    }
    let mut written = Vec::new();
    for cmd in commands() {
        let name = cmd.get_name().to_string();
        let mut built = cmd.clone();
        built.build();
        man_pages(&built, &name, &man, &mut written)?;
        for shell in SHELLS {
            let mut cmd = cmd.clone();
            let path = clap_complete::generate_to(shell, &mut cmd, &name, &completions)
                .map_err(|source| GenError { path: completions.clone(), source })?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The `EXTRA` section (the programs' `after_help`: aligned tables of files
/// and exit statuses) in no-fill mode (`.nf` ... `.fi`), so `man` keeps its
/// line breaks instead of running the lines together into one paragraph.
pub fn preformatted_extra(page: &str) -> String {
    const HEAD: &str = "\n.SH EXTRA\n";
    let Some(at) = page.find(HEAD) else { return page.to_string() };
    let body = at + HEAD.len();
    let end = page[body..].find("\n.SH ").map_or(page.len(), |i| body + i + 1);
    format!("{}.nf\n{}.fi\n{}", &page[..body], &page[body..end], &page[end..])
}

/// The page of `cmd` as `NAME.1`, then one per visible subcommand as
/// `NAME-SUB.1` (the `git-commit(1)` convention).
fn man_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), GenError> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    // clap takes a `&'static str` name without its `string` feature; a
    // one-shot generator can leak a few bytes rather than change the
    // binaries' clap features.
    let static_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let man = clap_mangen::Man::new(cmd.clone().name(static_name));
    man.render(&mut page).map_err(|source| GenError { path: path.clone(), source })?;
    let page = preformatted_extra(&String::from_utf8_lossy(&page));
    std::fs::write(&path, page).map_err(|source| GenError { path: path.clone(), source })?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        man_pages(sub, &sub_name, dir, written)?;
    }
    Ok(())
}
