//! Property tests of the cltab parser: it never panics, and what it renders
//! it reads back identically.

use clinit_engine::cltab::{Cltab, Entry, Levels, Mode};
use clinit_engine::status::{ClStat, GroupState, GroupStatus};
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
                    // Tags must be unique across the file.
                    tag: format!("{tag}{i}"),
                    levels: Levels(levels),
                    mode,
                    command,
                    options: Default::default(),
                })
                .collect();
            Cltab { socket, clstat, entries, ..Cltab::default() }
        })
}

fn without_lines(mut tab: Cltab) -> Cltab {
    for e in &mut tab.entries {
        e.line = 0;
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
