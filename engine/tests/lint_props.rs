//! Property tests of the operator's hactl edit (`lint::set_level`): it never
//! panics, and an accepted edit changes exactly the one group's level.

use clinit_engine::cltab::Cltab;
use clinit_engine::hactl::Hactl;
use clinit_engine::lint::{ambiguous_tell, set_level};
use proptest::prelude::*;

const CLTAB: &str = "a:t1:start,test:respawn:true\nb:t2:1:once:true\nc:t3:stop:once:true\n";

fn valid_word() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "start", "stop", "1", "test"])
        .prop_map(String::from)
}

/// Mostly words of the cltab above, sometimes anything printable.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![4 => valid_word(), 1 => "[ -~]{0,6}"]
}

/// hactl-like text: mostly valid group/level lines (with optional preferred
/// nodes and trailing comments), comment lines, blank lines, rarely junk.
fn text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        6 => (valid_word(), valid_word(), prop::option::of("[0-9]{1,2}(,[0-9]{1,2}){0,2}"), prop::option::of("# [a-z ]{0,8}"))
            .prop_map(|(g, l, p, c)| format!("{g} {l} {} {}", p.unwrap_or_default(), c.unwrap_or_default())),
        1 => "# [ -~]{0,10}",
        1 => Just(String::new()),
        1 => "[ -~]{0,12}",
    ];
    prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
}

/// The edit asked for: mostly one the cltab backs, sometimes anything.
fn edit() -> impl Strategy<Value = (String, String)> {
    let backed =
        prop::sample::select(vec![("a", "start"), ("a", "test"), ("b", "1"), ("d", "stop")])
            .prop_map(|(g, l)| (g.to_string(), l.to_string()));
    prop_oneof![3 => backed, 1 => (word(), word())]
}

proptest! {
    #[test]
    fn an_accepted_edit_changes_exactly_one_group(text in text(), (group, level) in edit()) {
        let cltab = Cltab::parse(CLTAB, "cltab").expect("valid cltab");
        let before = Hactl::parse(&text, "hactl");
        match set_level(&text, "hactl", &cltab, &group, &level) {
            Err(_) => {}
            Ok(out) => {
                let before = before.expect("an edit is only accepted on a file that parses");
                let after = Hactl::parse(&out, "hactl").expect("the edited file parses");
                prop_assert_eq!(after.get(&group).map(|w| w.level.as_str()), Some(level.as_str()));
                // Preferred nodes of the edited group survive.
                if let Some(old) = before.get(&group) {
                    prop_assert_eq!(&after.groups[&group].preferred, &old.preferred);
                }
                let mut rest_before = before.groups.clone();
                let mut rest_after = after.groups.clone();
                rest_before.remove(&group);
                rest_after.remove(&group);
                prop_assert_eq!(rest_before, rest_after);
                // Only `stop` or a level some entry of the group names.
                prop_assert!(level == "stop"
                    || cltab.group_entries(&group).any(|e| e.levels.contains(&level)));
            }
        }
    }

    #[test]
    fn ambiguity_needs_a_group_name_no_entry_uses(group in word(), level in word()) {
        let cltab = Cltab::parse(CLTAB, "cltab").expect("valid cltab");
        let refused = ambiguous_tell(&cltab, &group, &level).is_some();
        let expected = cltab.has_group(&level)
            && !cltab.group_entries(&group).any(|e| e.levels.contains(&level));
        prop_assert_eq!(refused, expected);
    }
}
