//! How `mosha` logs the cluster driver's events: one line each (user data
//! and parse errors escaped), with warnings that persist from cycle to
//! cycle rate-limited ([`crate::repeats`]).

use super::executor::Executor;
use super::*;
use crate::repeats::Sighting;
use clinit_engine::monitor::replica_version::VersionNote;

impl Executor {
    /// A warning that may repeat every cycle while its cause lasts: said
    /// at warn once, reminded at most once a minute with a count, repeats
    /// in between at debug; its end is said at info
    /// ([`Executor::end_cycle_warnings`]).
    pub(super) fn say(&mut self, key: String, text: impl FnOnce() -> String) {
        match self.repeats.seen(self.clock.now(), key, text) {
            Sighting::New(line) | Sighting::Reminder(line) => warn!("{line}"),
            Sighting::Repeat(line) => debug!("{line}"),
        }
    }

    /// A cycle ended (the next one starts): warnings it did not see, for
    /// long enough, are over and said so. A blind cycle (membership
    /// unknown, no node read) counts as part of the next one.
    pub(super) fn end_cycle_warnings(&mut self) {
        if std::mem::take(&mut self.blind_cycle) {
            return;
        }
        for line in self.repeats.end_cycle(self.clock.now()) {
            info!("{line}");
        }
    }

    pub(super) fn log_event(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Node(event) => self.log_node_event(event),
            ClusterEvent::Init(notice) => match notice {
                clinit_engine::init::Notice::GroupState { group, level, state } => {
                    info!("group {group}: {level} {state}")
                }
                clinit_engine::init::Notice::RespawnThrottled { group, tag, pause } => {
                    warn!("{group}/{tag} respawning too rapidly: next start in {pause}")
                }
                clinit_engine::init::Notice::NotRespawned { group, tag, reason } => {
                    info!("{group}/{tag} not respawned: {reason}")
                }
                clinit_engine::init::Notice::Redefined { group, tag } => {
                    info!("{group}/{tag} restarting with its changed cltab line")
                }
                clinit_engine::init::Notice::GroupRemoved { group } => {
                    info!("group {group} removed (gone from cltab)")
                }
                clinit_engine::init::Notice::NotReady { group, tag, timeout } => {
                    warn!("{group}/{tag} not ready within {timeout}: stopped, FAILED")
                }
            },
            ClusterEvent::MembershipUnknown { reason, on_last_view, .. } => {
                self.say("membership".into(), || {
                    let meanwhile = if on_last_view {
                        "reading the peers on the last known membership"
                    } else {
                        "no decisions this cycle"
                    };
                    format!("membership unknown: {reason}; {meanwhile}")
                });
                self.blind_cycle |= !on_last_view;
            }
            ClusterEvent::ReadTimedOut { node: None, after } => self
                .say("membership timeout".into(), || {
                    format!("membership read did not finish within {after}")
                }),
            ClusterEvent::ReadTimedOut { node: Some(node), after } => self
                .say(format!("timeout {node}"), || {
                    format!("node {node}'s files: no answer within {after}")
                }),
            ClusterEvent::HactlChanged { hactl } => {
                info!("hactl now wants: {}", summarize_hactl(&hactl))
            }
            ClusterEvent::Adopted { file, from, theirs, mine } => {
                let mine = mine.map_or("none".to_string(), |m| format!("mtime {m}"));
                info!(
                    "{file}: adopted node {from}'s copy (mtime {theirs}), replacing mine ({mine})"
                )
            }
            ClusterEvent::Membership { members, changes } => {
                for (node, change, reason) in &changes {
                    debug!("membership: node {node} {change} in my view ({reason})");
                }
                if let Some(t) = &self.transitions {
                    t.changed(members, changes);
                }
            }
            ClusterEvent::Replica { file, note } => match note {
                VersionNote::TheirsTruncated { .. }
                | VersionNote::MineTruncated { .. }
                | VersionNote::MineRestored { .. } => {
                    warn!("{file}: {note}")
                }
                _ => info!("{file}: {note}"),
            },
            ClusterEvent::NotAdopted { file, from, reason } => {
                // Retried every cycle while the disk refuses: said once.
                self.say(format!("not adopted {file} {from} {reason}"), || {
                    format!("{file}: node {from}'s copy not adopted: {reason}")
                })
            }
            ClusterEvent::NewestUnparsable { file, node, errors } => {
                warn!("{}", crate::shared::newest_unparsable_line(file, node, &errors))
            }
            ClusterEvent::OwnUnparsable { file, errors, kept_last_good } => {
                error!("{}", crate::shared::own_unparsable_line(file, kept_last_good, &errors))
            }
            ClusterEvent::OwnUnreadable { file, reason } => self.say(format!("own {file}"), || {
                format!("{reason}: cannot read my own {file}; not replicating it")
            }),
            ClusterEvent::WriteFailed { file, seq, error, retry_at } => {
                let again = retry_at.saturating_sub(self.clock.now());
                let text = || format!("{file} write #{seq}: {error}; writing it again in {again}");
                // A hung or read-only mount fails every retry, several a
                // second: said once while it lasts (153 lines in 20 s
                // before), keyed by the error, not the write's number.
                self.say(format!("write {file}: {error}"), text);
            }
            ClusterEvent::FenceOrdered { node, incarnation, reason } => {
                warn!("fencing node {node} (incarnation {incarnation}): {reason}")
            }
            ClusterEvent::Fenced { node } => {
                info!("node {node} fenced");
                if let Some(t) = &self.transitions {
                    t.fenced(node);
                }
            }
            ClusterEvent::FenceFailed { node, error } => {
                error!("STOMITH node {node} FAILED: {error}")
            }
            ClusterEvent::SpawnFailed { id, error } => error!("{id}: not started: {error}"),
            ClusterEvent::Stopping { told } => info!("told stop: {}", told.join(", ")),
            ClusterEvent::StopWaiting { busy } => {
                info!("waiting for local groups to stop: {}", describe_busy(&busy))
            }
            ClusterEvent::StopTimedOut { busy, waited } => warn!(
                "local groups still busy after {waited}: {}; halting them now",
                describe_busy(&busy)
            ),
            ClusterEvent::Stopped => info!("every local group has stopped"),
            ClusterEvent::Halting => info!("halting the init machine"),
            ClusterEvent::Ranked(notice) => log_ranked(notice),
            ClusterEvent::PersistFailed { error } => {
                error!("ranked: persisting the durable state failed: {error}; retrying")
            }
            ClusterEvent::LateTellDropped { group, level, late_by } => {
                warn!("ranked: tell {group} {level} dropped, {late_by} past its not-after time")
            }
        }
    }

    fn log_node_event(&mut self, event: Event) {
        match event {
            Event::Monitor(notice) => match notice {
                Notice::QuorumLost { me, visible, reference } => error!(
                    "node {me}: quorum lost: can only see nodes {} (last good count {reference})",
                    list(&visible)
                ),
                Notice::Stale { node, age } => warn!(
                    "node {node} is stale: its clstat is {age} old (timeout {})",
                    self.timeout
                ),
                Notice::StaleEnded { node } => info!("node {node} is no longer stale"),
                Notice::Unreadable { node, reason, last_good_used } => {
                    let standin = if last_good_used {
                        "using its last good clstat"
                    } else {
                        "its groups are unknown: no planning meanwhile"
                    };
                    self.say(format!("unreadable {node}"), || {
                        let reason = crate::daemon::escape(&reason);
                        format!("node {node}'s clstat is unreadable ({reason}); {standin}")
                    });
                }
                Notice::Conflict { group, nodes, backoff } => warn!(
                    "group {group} is active on nodes {}: stopping it here, backing off {backoff}",
                    list(&nodes)
                ),
                Notice::PlanSuppressed { group, blind } => {
                    self.say(format!("suppressed {group}"), || {
                        format!("group {group} is not placed, but not planning it: nodes {} are unreadable", list(&blind))
                    })
                }
                Notice::NoHactl => self.say("nohactl".into(), || {
                    "no usable hactl on this node (nor a newer one elsewhere): no decisions".into()
                }),
            },
            Event::Told { group, level, reply } => match reply {
                Reply::Started => info!("tell {group} {level}"),
                other => self.say(format!("tell {group} {level}"), || {
                    format!("tell {group} {level} refused: {}", other.message())
                }),
            },
            Event::Halting { stopping } if stopping.is_empty() => {
                error!("quorum lost: no local group needs halting")
            }
            Event::Halting { stopping } => {
                error!("quorum lost: halting local groups {}", stopping.join(", "))
            }
            Event::Halted => warn!("quorum lost: every local group has stopped"),
            Event::QuorumRegained => info!("quorum regained: deciding again"),
            Event::NotListed { members } => self.say("notlisted".into(), || {
                format!("membership (nodes {}) does not list this node; counting it anyway", list(&members))
            }),
            Event::CltabReloaded { groups } => {
                info!("adopted a new cltab: groups {}; the init machine reloads it", groups.join(", "))
            }
        }
    }
}

/// The line for a peer's record that cannot be read (a torn, empty or
/// damaged heartbeat file). It used to say "its groups stay where they
/// are" and, 1.5 s later with the file still torn, the next line said
/// they "may be taken over (lease wait passed)" (issue 12, item 13): an
/// unreadable record is no news, not "stopped", so the groups stay only
/// until the node is revoked and its lease has run out, as for any node
/// not heard. Said once per reason.
fn unknown_record(node: u32, reason: &str) -> String {
    format!(
        "node {node}'s record is unknown ({reason}): read as no news, not as stopped; its groups \
         stay where they are unless no new heartbeat is read within 1.5 s, and then only until \
         its lease has run out"
    )
}

pub(super) fn describe_busy(busy: &[(String, GroupStatus)]) -> String {
    let parts: Vec<String> =
        busy.iter().map(|(g, s)| format!("{g} {} {}", s.level, s.state)).collect();
    parts.join(", ")
}

pub(super) fn summarize_hactl(h: &Hactl) -> String {
    let parts: Vec<String> = h.groups.iter().map(|(g, w)| format!("{g} {}", w.level)).collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// `ranked`'s notices as operators read them (issue 11: quorum changes,
/// fences and moves logged once each, with the reason). The machine emits
/// each on a change, so each is said once.
fn log_ranked(notice: clinit_engine::monitor::ranked::RankedNotice) {
    use clinit_engine::monitor::ranked::RankedNotice as N;
    match notice {
        N::LeaseAcquired { epoch, .. } => info!(
            "quorum gained: lease epoch {epoch} held (a majority acknowledges this node's heartbeats)"
        ),
        N::LeaseLost { epoch } => error!(
            "quorum lost: lease epoch {epoch} ran out (no majority acknowledged this node in time); \
             local groups killed at once"
        ),
        N::KillUnconfirmed => error!(
            "the kill after the lost lease was not confirmed: published `lost`; \
             nobody takes over from this node without a fence"
        ),
        N::WatchdogLost => error!(
            "the watchdog is gone and cannot be restarted: published `watchdog: false`; \
             a peer with a fence command fences this node at once if it falls silent, \
             and without one nothing is taken over from it"
        ),
        N::WatchdogBack => info!("the watchdog is back: published `watchdog: true` again"),
        N::Void { node, incarnation, why } => warn!(
            "node {node} (incarnation {incarnation}): its groups may be taken over ({why})"
        ),
        N::ClaimHeld { group, grantors } => {
            info!("group {group} starts here: claim granted by nodes {}", list(&grantors))
        }
        N::StandbyDrain { group } => {
            info!("group {group} stopped here: this node is in standby; another node takes it")
        }
        N::Conflict { group, keeper } => warn!(
            "group {group} also runs on node {keeper}, which ranks better: stopped here"
        ),
        N::TestFailed { group, until } => {
            warn!("group {group}: its test failed here; backing off (until {until} on this node's monotonic clock)")
        }
        N::MixedPolicy { node, policy } => warn!(
            "node {node} runs policy {policy}: ranked takes nothing over while policies are mixed"
        ),
        N::Revoked { node, up_to } => warn!(
            "node {node} revoked: heartbeats of its incarnation {} acknowledged up to {} and never \
             beyond (it no longer counts this node toward its lease)",
            up_to.incarnation, up_to.counter
        ),
        N::RevocationWithdrawn { node, up_to } => info!(
            "node {node} heard again: revocation withdrawn (no longer published); its \
             acknowledgements stay capped at incarnation {} counter {} until every other voter \
             has seen a record without the revocation",
            up_to.incarnation, up_to.counter
        ),
        N::RevocationLifted { node } => {
            info!("node {node}: revocation lifted (heard again, or released since)")
        }
        N::Unknown { node, reason } => warn!("{}", unknown_record(node, &reason)),
        N::TellRefused { group, level, reason, until } => warn!(
            "group {group}: tell {level} refused ({reason}): claim given up, backing off \
             (until {until} on this node's monotonic clock)"
        ),
        N::Stalled { group, since, until } => warn!(
            "group {group}: claimed here but no progress since {since}: claim released, backing \
             off (until {until} on this node's monotonic clock) so the next-ranked node takes it"
        ),
        N::ChangeRefused(why) => warn!("membership change refused: {why}"),
        N::ChangeProposed { change, why } => {
            use clinit_engine::monitor::ranked::membership::Autopilot;
            let why = match why {
                Autopilot::Demote(n) => format!("node {n} is dead: demoted to learner"),
                Autopilot::DemoteUnresponsive(n) => {
                    format!("node {n} has not acknowledged this node for a while: demoted to learner")
                }
                Autopilot::Promote(n) => format!("node {n} promoted to a free voter seat"),
            };
            info!(
                "proposing voters {} of version {} ({why})",
                list(&change.voters),
                change.replaces
            )
        }
        N::ConfigAdopted(config) => info!(
            "known membership now version {}: nodes {}{}",
            config.version,
            list(&config.members),
            if config.voters.is_empty() {
                String::new()
            } else {
                format!(" (voters {})", list(&config.voters))
            }
        ),
        N::FailingBack { group, to } => {
            info!("group {group} fails back to node {to}, which ranks better: stopped here")
        }
        N::Left { epoch } => {
            info!("left the cluster: every local group is idle, lease epoch {epoch} given up")
        }
        N::Resumed { gap } => warn!(
            "resumed after {gap} without a step (longer than H/2): suspicion of every peer \
             restarts from now"
        ),
        N::Misfiled { node, names } => {
            warn!("node {node}'s record names node {names}: refused (misfiled or copied by hand)")
        }
        N::FencedWhileRunning { by, incarnation } => error!(
            "node {by} FENCED this node (incarnation {incarnation}), but this mosha still runs: \
             the fence command reported success without killing it. No claim will be granted \
             to this incarnation: killing every local service now (SIGKILL), then rejoining as \
             a new incarnation. Fix the fence command"
        ),
        N::Rejoining { by, fenced, incarnation } => warn!(
            "rejoining as incarnation {incarnation}: incarnation {fenced} was fenced by node \
             {by} while it ran and its services are now dead; the new incarnation is persisted \
             before its first record and starts nothing until its peers acknowledge it"
        ),
    }
}

/// `1, 2, 3` (an empty list: `none`).
pub(super) fn list<'a>(nodes: impl IntoIterator<Item = &'a u32>) -> String {
    let parts: Vec<String> = nodes.into_iter().map(u32::to_string).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::executor::{fence_result, FenceProof};
    use super::*;

    /// A fence that succeeded was logged at error, as "done. " with an
    /// empty tail when the command printed nothing; a multi-line output
    /// split the line.
    #[test]
    fn a_fence_that_succeeded_is_one_info_line_without_an_empty_tail() {
        let (result, logged) = crate::test_log::capture(|| {
            let quiet = fence_result(
                FenceOutcome::Done { output: String::new() },
                2,
                FenceProof::CommandRequired,
            );
            let chatty = fence_result(
                FenceOutcome::Done { output: "power off\nok".into() },
                3,
                FenceProof::CommandRequired,
            );
            (quiet, chatty)
        });
        assert_eq!(result, (Ok(()), Ok(())));
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 2, "{logged}");
        assert!(lines.iter().all(|l| l.contains("INFO")), "{logged}");
        assert!(lines[0].ends_with("STOMITH node 2: done"), "{logged}");
        assert!(lines[1].ends_with("STOMITH node 3: done; output: power off\\nok"), "{logged}");
        // A failure with no output ends at its status, without ": ".
        let failed = fence_result(
            FenceOutcome::Failed { reason: "`f 2` exit status: 1".into(), output: String::new() },
            2,
            FenceProof::CommandRequired,
        );
        let text = failed.expect_err("failed").to_string();
        assert_eq!(text, "fence command failed (`f 2` exit status: 1)");
    }

    /// Issue 12, item 13: with node 2's heartbeat file truncated, its
    /// peers logged "its groups stay where they are", then "its groups may
    /// be taken over (lease wait passed)". The first line must not promise
    /// what the second takes back.
    #[test]
    fn an_unknown_record_says_its_groups_stay_only_until_its_lease_runs_out() {
        let line = unknown_record(2, "/mfs/2/var/mosix-ha/heartbeat: empty record");
        assert!(line.starts_with("node 2's record is unknown (/mfs/2/"), "{line}");
        assert!(!line.ends_with("its groups stay where they are"), "{line}");
        assert!(line.contains("until its lease has run out"), "{line}");
    }
}
