//! Transcripts of inputs → actions, checked as insta snapshots. Each line
//! is one input (with its time and reply) followed by the actions it caused.

use super::*;
use std::fmt::Write as _;

struct Script {
    init: Init,
    now: Millis,
    log: String,
}

impl Script {
    fn new(cltab: &str) -> Script {
        let table = Cltab::parse(cltab, "cltab").expect("test cltab parses");
        let init = Init::new(InitConfig::default(), table, Millis(0));
        let mut s = Script { init, now: Millis(0), log: String::new() };
        s.record("start", Reply::None);
        s
    }

    fn input(&mut self, what: String, input: Input) -> &mut Self {
        let reply = self.init.handle(self.now, input);
        self.record(&what, reply);
        self
    }

    fn tell(&mut self, group: &str, level: &str) -> &mut Self {
        let input = Input::Tell { group: group.into(), level: level.into() };
        self.input(format!("tell {group} {level}"), input)
    }

    fn exit(&mut self, id: u64, code: i32) -> &mut Self {
        let input =
            Input::Exited { id: ProcId(id), status: ExitStatus::Code(code), lingering: false };
        self.input(format!("exit #{id} code {code}"), input)
    }

    fn killed(&mut self, id: u64, sig: i32) -> &mut Self {
        let input =
            Input::Exited { id: ProcId(id), status: ExitStatus::Signaled(sig), lingering: false };
        self.input(format!("exit #{id} signal {sig}"), input)
    }

    /// The leader exits but its process group still has members.
    fn exit_lingering(&mut self, id: u64, code: i32) -> &mut Self {
        let input =
            Input::Exited { id: ProcId(id), status: ExitStatus::Code(code), lingering: true };
        self.input(format!("exit #{id} code {code}, group lingers"), input)
    }

    fn gone(&mut self, id: u64) -> &mut Self {
        self.input(format!("group of #{id} gone"), Input::GroupGone { id: ProcId(id) })
    }

    fn reload(&mut self, cltab: &str) -> &mut Self {
        let table = Cltab::parse(cltab, "cltab").expect("test cltab parses");
        self.input("reload".into(), Input::Reload { table })
    }

    fn shutdown(&mut self) -> &mut Self {
        self.input("shutdown".into(), Input::Shutdown)
    }

    /// Advance the clock to `ms`, ticking at every deadline on the way.
    fn until(&mut self, ms: u64) -> &mut Self {
        while let Some(at) = self.init.poll_timeout() {
            if at > Millis(ms) {
                break;
            }
            self.now = at;
            self.input("tick".into(), Input::Tick);
        }
        self.now = Millis(ms);
        self
    }

    fn record(&mut self, what: &str, reply: Reply) {
        let msg = reply.message();
        let _ = write!(self.log, "@{} {what}", self.now);
        if !msg.is_empty() {
            let _ = write!(self.log, " -> {msg}");
        }
        self.log.push('\n');
        for a in self.init.drain_actions() {
            let line = match a {
                Action::Spawn { id, group, tag, level, command } => {
                    format!("spawn {id} {group}/{tag} level={level}: {command}")
                }
                Action::Signal { id, signal } => format!("signal {id} {signal}"),
                Action::WriteStatus { seq, status } => {
                    let body = status.query(None, None).trim_end().replace('\n', ", ");
                    format!("clstat#{seq}: {body}")
                }
                Action::Notice(Notice::GroupState { .. }) => continue,
                Action::Notice(n) => format!("notice {n:?}"),
                Action::Exit => "EXIT".into(),
            };
            let _ = writeln!(self.log, "    {line}");
        }
    }
}

#[test]
fn runmodes_start_in_file_order_and_wait_blocks() {
    let mut s = Script::new(
        "g:a:1:once:sleep 4\ng:b:1:wait:sleep 2\ng:c:1:respawn:server\ng:d:1:off:never\ng:e:2:once:other\n",
    );
    s.tell("g", "1").exit(2, 0).exit(1, 0).exit(3, 1);
    insta::assert_snapshot!(s.log);
}

#[test]
fn test_verdicts_passed_failed_and_mixed() {
    let tab = "t:t1:p,f,m:test:true\nt:t2:p:test:true\nt:t3:f:test:false\nt:o1:m:once:x\n";
    let mut s = Script::new(tab);
    s.tell("t", "p").exit(1, 0).exit(2, 0);
    s.tell("t", "f").exit(3, 1);
    s.tell("t", "m").exit(4, 0);
    s.tell("t", "empty");
    insta::assert_snapshot!(s.log);
}

#[test]
fn level_change_keeps_shared_entries_and_escalates_stops() {
    let tab = "g:both:12:respawn:shared\ng:one:1:once:only-in-1\ng:two:2:wait:only-in-2\n";
    let mut s = Script::new(tab);
    s.tell("g", "1");
    s.tell("g", "2").until(20_000).killed(2, 9).exit(3, 0);
    // Re-telling the level it is in re-runs nothing.
    s.tell("g", "2");
    insta::assert_snapshot!(s.log);
}

#[test]
fn stop_of_a_cooperative_child_needs_no_escalation() {
    let mut s = Script::new("g:a:1:once:x\ng:b:2:once:y\n");
    s.tell("g", "1").tell("g", "2").killed(1, 2).until(30_000);
    insta::assert_snapshot!(s.log);
}

#[test]
fn respawn_throttle_pauses_a_crash_loop() {
    let mut s = Script::new("r:loop:1:respawn:false\n");
    s.tell("r", "1");
    for id in 1..=7 {
        s.now = Millis(id * 10);
        s.exit(id, 1);
    }
    s.until(70_000);
    insta::assert_snapshot!(s.log);
}

#[test]
fn removed_group_halts_gracefully_and_leaves_clstat() {
    let mut s = Script::new("gone:a:1:respawn:x\nstay:b:1:once:y\n");
    s.tell("gone", "1").tell("stay", "1");
    s.reload("stay:b:1:once:y\n").until(6_000).killed(1, 15);
    s.tell("gone", "1");
    insta::assert_snapshot!(s.log);
}

#[test]
fn changed_entry_is_stopped_gracefully_at_the_next_tell() {
    let mut s = Script::new("g:a:1:respawn:old\n");
    s.tell("g", "1").reload("g:a:1:off:old\n").tell("g", "1").killed(1, 2);
    s.reload("g:a:1:once:new\n").tell("g", "1");
    insta::assert_snapshot!(s.log);
}

#[test]
fn shutdown_halts_passed_and_failed_groups_too() {
    let tab = "p:t:1:test:true\np:bg:1:once:daemon\nf:t2:1:test:false\nf:bg2:1:respawn:d2\n";
    let mut s = Script::new(tab);
    s.tell("p", "1").exit(1, 0).tell("f", "1").exit(3, 1);
    s.shutdown().tell("p", "1").killed(2, 2).killed(4, 2);
    insta::assert_snapshot!(s.log);
}

#[test]
fn level_zero_group_zero_and_bad_requests() {
    let mut s = Script::new("0:z:0:once:zero\n0:one:1:once:one\n");
    s.tell("0", "1").tell("0", "0").killed(1, 2);
    s.tell("nope", "1").tell("", "1").tell("0", "a b");
    // A late exit for an instance the machine no longer tracks is ignored.
    s.exit(1, 0).exit(99, 0);
    insta::assert_snapshot!(s.log);
}

#[test]
fn heartbeat_rewrites_status_every_30s() {
    let mut s = Script::new("g:a:1:once:x\n");
    s.tell("g", "1").until(65_000);
    insta::assert_snapshot!(s.log);
}

#[test]
fn tell_during_a_running_wait_entry_stops_it() {
    let mut s = Script::new("g:w:1:wait:slow\ng:after:1:once:never-reached\ng:b:2:once:b\n");
    s.tell("g", "1").tell("g", "2").killed(1, 2);
    insta::assert_snapshot!(s.log);
}

#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut s = Script::new("g:a:12:respawn:x\ng:b:1:wait:y\n");
        s.tell("g", "1").exit(2, 0).exit(1, 1).tell("g", "2").until(100_000).shutdown();
        s.log
    };
    assert_eq!(run(), run());
}

#[test]
fn lingering_process_groups_are_stopped_and_respawn_does_not_wait_for_them() {
    let tab = "g:bg:1:once:daemon &\ng:t:1:test:true\ng:r:1:respawn:srv & wait\n";
    let mut s = Script::new(tab);
    // A once entry whose command backgrounds a daemon and exits: still alive.
    s.tell("g", "1").exit_lingering(1, 0);
    // A test's verdict comes from its own exit, whatever it left behind.
    s.exit_lingering(2, 0);
    // A respawn entry whose shell died restarts at once; the leftovers of
    // the dead instance are stopped with the full escalation meanwhile.
    s.exit_lingering(3, 1).until(16_000).gone(3);
    // Leaving the level stops the lingering groups with the full escalation.
    s.tell("g", "2").until(32_000).gone(1).gone(2).killed(4, 2);
    insta::assert_snapshot!(s.log);
}

#[test]
fn changed_respawn_line_restarts_with_its_new_definition() {
    let mut s = Script::new("g:srv:1:respawn:exec sleep 3011\n");
    s.tell("g", "1");
    s.reload("g:srv:1:respawn:exec sleep 3012\n").killed(1, 9);
    // Moved out of the level, or no longer respawn: not restarted, forgotten.
    s.reload("g:srv:2:respawn:exec sleep 3012\n").killed(2, 9);
    s.reload("g:srv:1:respawn:exec sleep 3012\n").tell("g", "1");
    s.reload("g:srv:1:once:exec sleep 3013\n").killed(3, 9).tell("g", "1");
    insta::assert_snapshot!(s.log);
}

impl Script {
    fn ready(&mut self, id: u64) -> &mut Self {
        self.input(format!("ready #{id}"), Input::Ready { id: ProcId(id) })
    }

    fn entry_states(&self) -> String {
        let mut out = String::new();
        for r in self.init.entries(self.now) {
            let state = serde_json::to_value(&r.state).expect("json")["state"].clone();
            let _ =
                writeln!(out, "{}/{}: {state} {}", r.group, r.tag, r.failure.unwrap_or_default());
        }
        out
    }
}

/// Readiness (issue 11): a `ready=` entry holds back the next entry and
/// the verdict until it is ready; readiness of another id is ignored.
#[test]
fn a_ready_entry_holds_back_the_next_until_ready() {
    let mut s = Script::new(
        "g:db:1:respawn:db\n:::entry:db ready=notify\ng:web:1:once:web\ng:w2:1:once:w2\n\
         :::entry:w2 ready=fd:3\n",
    );
    s.tell("g", "1").until(5_000).ready(99).ready(1);
    assert_eq!(s.init.status().get("g").map(|g| g.state.as_str()), Some("STARTING"));
    assert_eq!(s.entry_states(), "g/db: \"running\" \ng/web: \"running\" \ng/w2: \"starting\" \n");
    s.ready(3);
    assert_eq!(s.init.status().get("g").map(|g| g.state.as_str()), Some("DONE"));
    insta::assert_snapshot!(s.log);
}

/// An entry that never signals readiness is stopped when its time-out
/// (90 s by default) ends, and the entry and group FAIL with the reason.
#[test]
fn an_entry_never_ready_fails_at_its_timeout() {
    let mut s = Script::new("g:a:1:once:srv\n:::entry:a ready=notify\ng:b:1:once:next\n");
    s.tell("g", "1").until(89_999);
    assert_eq!(s.init.status().get("g").map(|g| g.state.as_str()), Some("STARTING"));
    s.until(90_000);
    assert!(s.entry_states().contains("stopping"), "{}", s.entry_states());
    s.killed(1, 2);
    assert_eq!(s.init.status().get("g").map(|g| g.state.as_str()), Some("FAILED"));
    assert_eq!(
        s.entry_states(),
        "g/a: \"failed\" not ready within 90s (ready=notify)\ng/b: \"running\" \n"
    );
    insta::assert_snapshot!(s.log);
}

/// A `once` entry that exits before it is ready fails; a respawned
/// instance of a ready entry that never gets ready fails the settled group.
#[test]
fn exits_before_readiness_and_late_timeouts_fail() {
    let mut s = Script::new(
        "g:a:1:once:x\n:::entry:a ready=fd:4 ready_timeout=2s\n\
         h:r:1:respawn:y\n:::entry:r ready=notify ready_timeout=500ms\n",
    );
    s.tell("g", "1").exit(1, 0);
    assert_eq!(s.init.status().get("g").map(|g| g.state.as_str()), Some("FAILED"));
    assert!(s.entry_states().contains("exited (exit code 0) before it was ready"));
    s.tell("h", "1").ready(2);
    assert_eq!(s.init.status().get("h").map(|g| g.state.as_str()), Some("DONE"));
    s.exit(2, 1).until(1_000);
    assert_eq!(s.init.status().get("h").map(|g| g.state.as_str()), Some("FAILED"));
    s.killed(3, 2);
    assert!(
        s.entry_states().contains("h/r: \"failed\" not ready within 0.500s"),
        "{}",
        s.entry_states()
    );
    assert_eq!(s.init.live_processes(), 0, "not respawned after failing");
}

/// An entry stopped for failing readiness, then told away from its level
/// while it is still stopping, is forgotten once gone (not kept FAILED).
#[test]
fn a_failed_entry_told_away_while_stopping_is_forgotten() {
    let mut s = Script::new("g:a:1:once:srv\n:::entry:a ready=notify ready_timeout=1s\n");
    s.tell("g", "1").until(1_000);
    assert!(s.entry_states().contains("stopping"));
    s.tell("g", "2").killed(1, 2);
    assert_eq!(s.init.status().get("g").map(|g| g.state.as_str()), Some("DONE"));
    assert_eq!(s.entry_states(), "", "nothing left of a");
}
