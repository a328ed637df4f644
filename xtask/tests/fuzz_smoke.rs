//! A quick run of every fuzz target inside `cargo test` (10^4 mutants each;
//! `cargo xtask fuzz all` runs 10^6), plus checks that the harness itself
//! catches what it is there to catch.

use std::path::PathBuf;
use std::time::Duration;
use xtask::fuzz::{self, Options, Target};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn opts(target: Target, iters: u64) -> Options {
    Options { target, iters, seed: 42, timeout: Duration::from_secs(20), dir: corpus_dir() }
}

#[test]
fn every_target_passes_ten_thousand_mutants_of_its_corpus() {
    for target in Target::ALL {
        let summary = fuzz::run(&opts(target, 10_000), |_| {})
            .unwrap_or_else(|e| panic!("fuzz {}: {e}", target.name()));
        let corpus = fuzz::load_corpus(&corpus_dir(), target).expect("corpus").len() as u64;
        assert_eq!(summary.inputs, 10_000 + corpus, "{}", target.name());
        // The corpus is valid, so "ok" is reached; mutation reaches errors too.
        assert!(summary.accepted >= corpus, "{}: {summary:?}", target.name());
        assert!(summary.outcomes.iter().any(|k| k == "ok"), "{}: {summary:?}", target.name());
        assert!(summary.outcomes.len() >= 3, "{}: too few outcomes {summary:?}", target.name());
    }
}

#[test]
fn every_corpus_entry_is_accepted_by_its_parser() {
    for target in Target::ALL {
        for (i, input) in
            fuzz::load_corpus(&corpus_dir(), target).expect("corpus").iter().enumerate()
        {
            if target == Target::Protocol && input.starts_with(b"{\"ok\"") {
                continue; // replies: decoded by the client, refused as requests
            }
            assert_eq!(target.check(input), Ok("ok".to_string()), "{} corpus #{i}", target.name());
        }
    }
}

#[test]
fn a_bad_input_gives_a_located_error_kind_not_a_failure() {
    assert_eq!(Target::Cltab.check(b"g:t:1:sometimes:true\n"), Ok("UnknownMode".into()));
    assert_eq!(Target::Cltab.check(b"ok:a:1:once:x\ng:\0:1:once:x\n"), Ok("Nul".into()));
    assert!(Target::Hactl.check(b"web 1\nweb x y z\n").unwrap().starts_with("err-"));
    assert!(Target::Hactl.check(b"web 1\n\xff 1\n").unwrap().starts_with("err-"));
    assert!(Target::Clstat
        .check(b"Cluster::Init::Group a 1 DONE\n\xff\n")
        .unwrap()
        .starts_with("err-"));
    assert!(Target::Trace.check(b"{\"format\":\"clinit-trace/1\"}\n\xff\n").is_ok());
    assert!(Target::Protocol.check(b"{\"op\":\"\\u001b[2J\"}").is_ok());
}
