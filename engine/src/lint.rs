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
//! * [`set_level`]: the one safe edit of `hactl` (`mosha hactl set`): the
//!   new level is checked as above before anything is written, and the
//!   operator's comments and other lines stay as they were.

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

/// Why [`set_level`] refused an edit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HactlEditError {
    /// The current file does not parse: an edit would hide its errors.
    #[error("the current hactl does not parse; fix it first:\n{0}")]
    Unparsable(String),
    /// A group or level that cannot be one `hactl` field.
    #[error("{what} {word:?} cannot be written to hactl (empty, whitespace, or a leading '#')")]
    BadWord { what: &'static str, word: String },
    /// The level is not `stop` and the cltab does not back it.
    #[error("{0}")]
    Refused(HactlProblem),
}

/// `text` (a `hactl`, named `file` in messages) with `group` wanted at
/// `level`: the last line of the group gets the new level (its preferred
/// nodes and trailing comment kept), or a line is appended. Refused when the
/// file does not parse, when a word cannot be a field, or when the level is
/// not `stop` and no entry of the group in `cltab` names it
/// ([`check_hactl`]).
pub fn set_level(
    text: &str,
    file: &str,
    cltab: &Cltab,
    group: &str,
    level: &str,
) -> Result<String, HactlEditError> {
    Hactl::parse(text, file).map_err(|e| HactlEditError::Unparsable(e.to_string()))?;
    for (what, word) in [("group", group), ("level", level)] {
        if word.is_empty() || word.starts_with('#') || word.chars().any(char::is_whitespace) {
            return Err(HactlEditError::BadWord { what, word: word.to_string() });
        }
    }
    let mut wanted = Hactl::default();
    wanted.groups.insert(
        group.to_string(),
        crate::hactl::Want { level: level.to_string(), preferred: Vec::new() },
    );
    if let Some(problem) = check_hactl(&wanted, cltab).into_iter().next() {
        return Err(HactlEditError::Refused(problem));
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last = lines.iter().rposition(|l| {
        let first = l.split_whitespace().next();
        first == Some(group)
    });
    match last {
        Some(i) => {
            // group, old level, then the rest (preferred nodes, comment) as is.
            let line = &lines[i];
            let indent = &line[..line.len() - line.trim_start().len()];
            let after_group = line.trim_start()[group.len()..].trim_start();
            let rest =
                after_group.find(char::is_whitespace).map(|end| &after_group[end..]).unwrap_or("");
            lines[i] = format!("{indent}{group} {level}{rest}");
        }
        None => lines.push(format!("{group} {level}")),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
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

    #[test]
    fn set_level_edits_the_group_line_and_keeps_the_rest() {
        let cltab = table(TABLE);
        let text = "# the farm\nweb stop 2,3  # preferred\nweb2 web\n";
        let out = set_level(text, "hactl", &cltab, "web", "start").expect("valid edit");
        assert_eq!(out, "# the farm\nweb start 2,3  # preferred\nweb2 web\n");
        let parsed = Hactl::parse(&out, "hactl").expect("parses");
        assert_eq!(
            parsed.get("web").map(|w| (w.level.as_str(), w.preferred.clone())),
            Some(("start", vec![2, 3]))
        );
        // A new group is appended (a file without a final newline too).
        let out = set_level("web start", "hactl", &cltab, "host1", "2").expect("valid");
        assert_eq!(out, "web start\nhost1 2\n");
        // stop needs no entry, not even a group in the cltab.
        assert!(set_level(text, "hactl", &cltab, "gone", "stop").is_ok());
    }

    #[test]
    fn set_level_refuses_typos_bad_words_and_a_broken_file() {
        let cltab = table(TABLE);
        let e = set_level("web start\n", "hactl", &cltab, "web", "sttart").expect_err("typo");
        assert!(matches!(e, HactlEditError::Refused(HactlProblem::UnknownLevel { .. })), "{e}");
        let e = set_level("", "hactl", &cltab, "nosuch", "start").expect_err("no group");
        assert!(matches!(e, HactlEditError::Refused(HactlProblem::UnknownGroup { .. })), "{e}");
        let e = set_level("", "hactl", &cltab, "web", "st art").expect_err("space");
        assert_eq!(
            e.to_string(),
            "level \"st art\" cannot be written to hactl (empty, whitespace, or a leading '#')"
        );
        let e = set_level("web\n", "hactl", &cltab, "web", "start").expect_err("broken");
        assert!(e.to_string().contains("hactl:1: group \"web\" has no level"), "{e}");
    }
}
