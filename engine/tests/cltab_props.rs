//! Property tests of the cltab parser: it never panics, and what it renders
//! it reads back identically.

use clinit_engine::cltab::{Cltab, Entry, Levels, Mode};
use clinit_engine::options::{EntryOptions, Limit, Readiness, Resource};
use clinit_engine::status::{ClStat, GroupState, GroupStatus};
use clinit_engine::time::Millis;
use proptest::prelude::*;

fn mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(Mode::ALL.to_vec())
}

fn entry() -> impl Strategy<Value = (String, String, String, Mode, String)> {
    (
        "[a-z0-9_][a-z0-9_.-]{0,7}",
        "[a-z0-9_ ]{1,6}",
        "[a-z0-9,]{0,5}[a-z0-9]",
        mode(),
        "[ -~]{0,20}[a-z]",
    )
}

fn cltab() -> impl Strategy<Value = Cltab> {
    (
        prop::option::of("[ -~]{1,12}"),
        prop::option::of("/[a-z/]{1,12}"),
        prop::collection::vec(entry(), 0..12),
    )
        .prop_map(|(socket, clstat, raw)| {
            let entries = raw
                .into_iter()
                .enumerate()
                .map(|(i, (group, tag, levels, mode, command))| Entry {
                    line: 0,
                    group,
                    // Tags must be unique across the file: the index comes
                    // first and ends at the first `_`, so no two entries
                    // share a tag (`{tag}{i}` made "_1"+"0" equal "_"+"10").
                    tag: format!("t{i}_{tag}"),
                    levels: Levels(levels),
                    mode,
                    command,
                    options: Default::default(),
                })
                .map(std::sync::Arc::new)
                .collect();
            Cltab { socket, clstat, entries, ..Cltab::default() }
        })
}

fn without_lines(mut tab: Cltab) -> Cltab {
    for e in &mut tab.entries {
        std::sync::Arc::make_mut(e).line = 0;
    }
    tab
}

proptest! {
    #[test]
    fn parse_never_panics(text in "(?s).{0,400}") {
        let _ = Cltab::parse(&text, "fuzz");
    }

    #[test]
    fn parse_never_panics_on_colon_heavy_lines(text in "([a-z:#, \\n]{0,12}\\n){0,20}") {
        if let Err(errors) = Cltab::parse(&text, "fuzz") {
            for e in errors.0 {
                prop_assert!(e.line >= 1);
                prop_assert!(e.to_string().starts_with("fuzz:"));
            }
        }
    }

    #[test]
    fn render_then_parse_round_trips(tab in cltab()) {
        let text = tab.render();
        let back = Cltab::parse(&text, "rendered").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(without_lines(back), without_lines(tab));
    }

    #[test]
    fn clstat_render_then_parse_round_trips(
        groups in prop::collection::btree_map("[!-~]{1,8}", ("[!-~]{1,6}", 0usize..9), 0..10)
    ) {
        let states = ["CONFIGURED", "STARTING", "CHECKING", "DONE", "PASSED", "FAILED",
                      "STOPPING", "DUMPING", "HALTING"];
        let mut stat = ClStat::default();
        for (g, (level, s)) in groups {
            stat.groups.insert(g, GroupStatus { level, state: GroupState::parse(states[s]) });
        }
        prop_assert_eq!(ClStat::parse(&stat.render()), stat);
    }
}

fn options() -> impl Strategy<Value = EntryOptions> {
    let limit = (prop::option::of(0u64..1_000_000), prop::option::of(1_000_000u64..2_000_000))
        .prop_map(|(soft, hard)| (soft, if soft.is_none() { None } else { hard }));
    (
        prop::option::of("/[ -~]{0,10}"),
        prop::option::of("[a-z0-9_\"\\\\ ]{1,8}"),
        prop::collection::vec(("[A-Z_][A-Z0-9_]{0,5}", "[ -~]{0,10}"), 0..3),
        prop::option::of(0u32..0o777),
        prop::collection::btree_map(prop::sample::select(Resource::ALL.to_vec()), limit, 0..3),
        prop::option::of(prop_oneof![Just(Readiness::Notify), (3u32..100).prop_map(Readiness::Fd)]),
        prop::option::of((1u64..1_000_000).prop_map(Millis)),
    )
        .prop_map(|(cwd, user, env, umask, limits, ready, ready_timeout)| EntryOptions {
            cwd,
            user,
            group: None,
            env,
            umask,
            limits: limits
                .into_iter()
                .map(|(resource, (soft, hard))| Limit { resource, soft, hard })
                .collect(),
            ready,
            ready_timeout,
        })
}

proptest! {
    /// Per-entry options (the `:::entry:` directive): what is rendered is
    /// read back identically, quoting included.
    #[test]
    fn entry_options_round_trip(o in options()) {
        prop_assert_eq!(EntryOptions::parse(&o.render()), Ok(o));
    }

    #[test]
    fn entry_directives_never_panic(words in "[a-z._=:\"\\\\ 0-9/]{0,60}") {
        let text = format!("g:t:1:respawn:x\n:::entry:t {words}\n");
        if let Err(errors) = Cltab::parse(&text, "fuzz") {
            for e in errors.0 {
                prop_assert_eq!(e.line, 2);
            }
        }
    }
}
