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
    // The aligned after-help tables keep their line breaks (no-fill mode):
    // `man` used to run "Files:" and its lines together into one paragraph.
    let extra = &clinit[clinit.find(".SH EXTRA").expect("EXTRA section")..];
    assert!(extra.starts_with(".SH EXTRA\n.nf\nFiles:\n"), "{extra}");
    let fi = extra.find("\n.fi\n").expect("fill mode restored");
    assert!(extra.find("\n.SH ").is_none_or(|sh| fi < sh), "{extra}");
    assert!(extra[..fi].contains("\n  4  \\-\\-wait timed out"), "{extra}");
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
    // Every file is reported, and each program has its three completions.
    let on_disk = |sub: &str| fs::read_dir(dir.path().join(sub)).expect("dir").count();
    assert_eq!(files.len(), on_disk("man") + on_disk("completions"), "{files:?}");
    assert_eq!(on_disk("completions"), 9);
    assert!(dir.path().join("man/mosha-hactl-set.1").exists(), "nested subcommands get pages");
}
