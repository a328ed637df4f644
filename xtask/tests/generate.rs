//! CI runs the generator: every man page and completion script is written
//! into a temp dir and carries what an operator looks for in it.

use std::fs;

#[test]
fn man_pages_and_completions_are_generated() {
    let dir = tempfile::Builder::new().prefix("xtask-dist.").tempdir().expect("tempdir");
    let files = xtask::generate(dir.path()).expect("generate");
    let read = |rel: &str| {
        fs::read_to_string(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    for page in [
        "clinit.1",
        "clinit-status.1",
        "clinit-tell.1",
        "clinit-check.1",
        "mosha.1",
        "mosha-status.1",
        "mosha-check.1",
        "clinit-sim.1",
        "clinit-sim-run.1",
    ] {
        let text = read(&format!("man/{page}"));
        assert!(text.starts_with(".ie") || text.contains(".TH "), "{page} is a man page");
    }
    let clinit = read("man/clinit.1");
    assert!(clinit.contains(".TH clinit 1"), "{clinit}");
    assert!(clinit.contains("3  the daemon is not running"), "exit statuses documented");
    assert!(read("man/mosha.1").contains("\\-\\-config"), "mosha's settings file flag");
    for (file, words) in [
        ("completions/clinit.bash", &["status", "tell", "check", "--level"][..]),
        ("completions/_mosha", &["status", "check", "--mfsbase"]),
        ("completions/clinit-sim.fish", &["replay", "sweep"]),
    ] {
        let text = read(file);
        for w in words {
            assert!(text.contains(w), "{file} completes {w}");
        }
    }
    assert_eq!(files.len(), 9 + 9 + count_other_sim_pages(dir.path()), "{files:?}");
}

/// clinit-sim's subcommands beyond `run` (their number is the simulator's
/// business; each must have its page).
fn count_other_sim_pages(dir: &std::path::Path) -> usize {
    fs::read_dir(dir.join("man"))
        .expect("man dir")
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("clinit-sim-") && n != "clinit-sim-run.1"
        })
        .count()
}
