//! Operator safety checks: rules that catch a typo or a misread command
//! before it moves anything. Pure functions over parsed tables; the command
//! line tools (`clinit`, `mosha check`) call them and decide how to report.
//!
//! Two rules live here:
//!
//! * [`ambiguous_tell`]: `clinit -v web` was meant as "show me web" by an
//!   operator used to `systemctl status web`, but in Cluster::Init's command
//!   line `-v` only means "print the status after the action", so the word
//!   `web` was a *level* for the group named after the host, which then
//!   stopped its services. A tell whose level word is the name of a group,
//!   while no entry of the target group names that level, is refused as
//!   ambiguous. Telling a level that no entry names is otherwise allowed (it
//!   stops the group's entries, and scripts rely on that, as in the
//!   original), and an explicit `--level` forces the ambiguous form.
//! * [`check_hactl`]: every level wanted in `hactl` must be one that some
//!   entry of the group names in the cltab, otherwise a typo such as
//!   `sttart` is accepted and silently runs nothing (the original showed
//!   such a group as running).

use crate::cltab::Cltab;
use crate::hactl::Hactl;
use thiserror::Error;

/// A tell refused by [`ambiguous_tell`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "'{level}' is a group, and no entry of group '{group}' names a level '{level}'; \
     did you mean `clinit status {level}`? (to tell it anyway: clinit {group} --level {level})"
)]
pub struct AmbiguousTell {
    /// The group the tell was aimed at.
    pub group: String,
    /// The level word, which is also a group name.
    pub level: String,
}

/// Refuse a tell of `group` to `level` when `level` names a group of the
/// table and no entry of `group` belongs to that level (matching as the
/// init machine does, [`crate::cltab::Levels::contains`]). `None`: the tell
/// is fine.
pub fn ambiguous_tell(table: &Cltab, group: &str, level: &str) -> Option<AmbiguousTell> {
    let is_group = table.has_group(level);
    let level_used = table.group_entries(group).any(|e| e.levels.contains(level));
    (is_group && !level_used)
        .then(|| AmbiguousTell { group: group.to_string(), level: level.to_string() })
}

/// What is wrong with one `hactl` line, given the cltab it drives.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HactlProblem {
    /// The group has no entry at all: nothing would ever run for it.
    #[error("hactl wants group '{group}' at level '{level}', but the cltab has no entry of group '{group}'")]
    UnknownGroup { group: String, level: String },
    /// No entry of the group names the level: a typo (`sttart`) that would
    /// run nothing while the group is reported as started.
    #[error(
        "hactl wants group '{group}' at level '{level}', which no entry of '{group}' names \
         (its entries' levels: {known})"
    )]
    UnknownLevel { group: String, level: String, known: String },
}

/// Check every wanted group of `hactl` against `cltab`. The level `stop`
/// (wanted nowhere) is always valid. Returns the problems in group order;
/// empty means the pair is consistent.
pub fn check_hactl(hactl: &Hactl, cltab: &Cltab) -> Vec<HactlProblem> {
    let mut problems = Vec::new();
    for (group, want) in &hactl.groups {
        if want.level == "stop" {
            continue;
        }
        if !cltab.has_group(group) {
            problems.push(HactlProblem::UnknownGroup {
                group: group.clone(),
                level: want.level.clone(),
            });
            continue;
        }
        if !cltab.group_entries(group).any(|e| e.levels.contains(&want.level)) {
            let mut known: Vec<&str> =
                cltab.group_entries(group).map(|e| e.levels.as_str()).collect();
            known.dedup();
            problems.push(HactlProblem::UnknownLevel {
                group: group.clone(),
                level: want.level.clone(),
                known: known.join(" "),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Cltab {
        Cltab::parse(text, "cltab").expect("valid cltab")
    }

    const TABLE: &str = "host1:sshd:1,2:respawn:sshd\nweb:httpd:start:respawn:httpd\n\
                         web:check:test:test:true\nweb2:x:web:once:true\n";

    #[test]
    fn a_level_word_that_names_a_group_is_ambiguous() {
        let t = table(TABLE);
        let refused = ambiguous_tell(&t, "host1", "web").expect("ambiguous");
        assert_eq!(refused, AmbiguousTell { group: "host1".into(), level: "web".into() });
        assert!(refused.to_string().contains("did you mean `clinit status web`?"), "{refused}");
    }

    #[test]
    fn a_group_whose_entries_name_that_level_is_not_ambiguous() {
        // web2 has an entry at level "web": telling web2 to "web" is meant.
        assert_eq!(ambiguous_tell(&table(TABLE), "web2", "web"), None);
    }

    #[test]
    fn unnamed_levels_that_are_not_groups_stay_allowed() {
        let t = table(TABLE);
        // Scripts stop a group by telling it a level no entry names.
        assert_eq!(ambiguous_tell(&t, "web", "halt"), None);
        assert_eq!(ambiguous_tell(&t, "web", "start"), None);
        assert_eq!(ambiguous_tell(&t, "host1", "2"), None);
        // Unknown target group: the daemon answers "no such group".
        assert_eq!(ambiguous_tell(&t, "nosuch", "1"), None);
    }

    #[test]
    fn single_character_levels_match_as_the_init_machine_does() {
        // Group "1" exists; host1's entry has levels "1,2", which names 1.
        let t = table("1:a:x:once:true\nhost1:b:1,2:once:true\nother:c:9:once:true\n");
        assert_eq!(ambiguous_tell(&t, "host1", "1"), None);
        assert!(ambiguous_tell(&t, "other", "1").is_some());
    }

    #[test]
    fn hactl_typos_and_unknown_groups_are_found() {
        let cltab = table(TABLE);
        let hactl = Hactl::parse("web sttart\nweb2 web\nnosuch start\nold stop\n", "hactl")
            .expect("valid hactl");
        let problems = check_hactl(&hactl, &cltab);
        assert_eq!(
            problems,
            vec![
                HactlProblem::UnknownGroup { group: "nosuch".into(), level: "start".into() },
                HactlProblem::UnknownLevel {
                    group: "web".into(),
                    level: "sttart".into(),
                    known: "start test".into()
                },
            ]
        );
        assert_eq!(
            problems[1].to_string(),
            "hactl wants group 'web' at level 'sttart', which no entry of 'web' names \
             (its entries' levels: start test)"
        );
    }

    #[test]
    fn a_consistent_pair_has_no_problem() {
        let hactl = Hactl::parse("web start\nweb2 web\n", "hactl").expect("valid");
        assert!(check_hactl(&hactl, &table(TABLE)).is_empty());
    }
}
