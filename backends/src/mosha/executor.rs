//! `mosha`'s executor: carries out the cluster driver's commands with real
//! files, processes and threads, and feeds their results back as inputs.
//! It judges nothing: what a result means is the driver's business.

use super::*;

/// A trace being written, with the digest of every decision so far (the
/// trace's last line, so a replay can be checked bit for bit).
pub(super) struct Recorder {
    pub(super) writer: TraceWriter,
    pub(super) records: u64,
    pub(super) digest: Sha256,
    /// `records` at the last [`Record::Mark`] written (`None`: none yet).
    pub(super) marked: Option<u64>,
}

impl Recorder {
    /// Write a [`Record::Mark`] (wall-clock anchor and digest so far) if
    /// records were written since the last one: a replay lines nodes up
    /// by it and verifies a recording cut by `kill -9` up to it.
    pub(super) fn mark(&mut self, node: u32, at: Millis) {
        if self.marked == Some(self.records) {
            return;
        }
        let wall_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let digest = self.digest.clone().finalize();
        let decisions_sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mark = Record::Mark { node, at, wall_ms, records: self.records, decisions_sha256 };
        self.writer.write(&mark);
        self.marked = Some(self.records);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let digest = std::mem::take(&mut self.digest).finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let end = Record::End { records: self.records, decisions_sha256: hex };
        self.writer.write(&end);
    }
}

/// Milliseconds since `mosha` started, on the monotonic clock.
#[derive(Clone, Copy)]
pub(super) struct Clock(pub(super) Instant);

impl Clock {
    pub(super) fn now(&self) -> Millis {
        Millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
    pub(super) fn instant(&self, at: Millis) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_millis(at.0))
    }
}

/// Where membership is read.
#[derive(Clone)]
pub(super) enum MembershipReader {
    Source(Arc<dyn Membership>),
    Heartbeats(Arc<dyn SharedStore>),
}

pub(super) fn membership_failure(e: MembershipError) -> IoFailure {
    match e {
        MembershipError::List { path, source } => {
            IoFailure::new(format!("cannot list nodes in {}", path.display()), &source)
        }
        MembershipError::Timeout(d) => {
            IoFailure::other("membership read", io::ErrorKind::TimedOut, format!("{d:?}"))
        }
        MembershipError::Other(text) => {
            IoFailure::other("membership read", io::ErrorKind::Other, text)
        }
    }
}

/// Carries out the driver's commands.
pub(super) struct Executor {
    pub(super) me: u32,
    pub(super) store: Arc<dyn SharedStore>,
    pub(super) membership: MembershipReader,
    pub(super) fence: Arc<dyn Fence>,
    pub(super) processes: RealProcesses,
    pub(super) clstat: PathBuf,
    pub(super) clock: Clock,
    /// Results of blocking work, fed back to the driver by the loop.
    pub(super) results: mpsc::UnboundedSender<ClusterInput>,
    /// Set when leaving, under the lock every heartbeat write holds, so no
    /// late write revives a removed heartbeat.
    pub(super) leaving: Arc<Mutex<bool>>,
    pub(super) hastat_write: Option<JoinHandle<()>>,
    pub(super) heartbeat_write: Option<JoinHandle<()>>,
    pub(super) removal: Option<JoinHandle<()>>,
    pub(super) labels: HashMap<clinit_engine::process::ProcId, String>,
    /// The exact stamps of the replicated files last read, so a copy keeps
    /// its source's mtime to the nanosecond (a cache: no rule).
    pub(super) stamps: Arc<Mutex<HashMap<(u32, SharedFile), Stamp>>>,
    pub(super) recorder: Option<Recorder>,
    /// The warnings that hold from cycle to cycle: said once, reminded
    /// once a minute, and said to be over when they are
    /// ([`crate::repeats`]).
    pub(super) repeats: crate::repeats::Repeats,
    /// This cycle could not see the causes of warnings (membership unknown,
    /// no node read): it is not counted as a cycle without them.
    pub(super) blind_cycle: bool,
    pub(super) timeout: Millis,
    pub(super) exit: bool,
    /// `ranked`: the watchdog process, and the process group of each child
    /// it watches.
    pub(super) watchdog: Option<crate::watchdog::WatchdogHandle>,
    pub(super) pgids: HashMap<clinit_engine::process::ProcId, u32>,
    /// The transition history and hooks (threads of their own).
    pub(super) transitions: Option<super::transitions::Transitions>,
    /// The group-change record beside clstat, for `mosha status`'s
    /// "since" and "moves in the last hour" of each group.
    pub(super) group_moves: crate::group_moves::Recorder,
    /// Membership reads carried out so far: the loop's wake on a
    /// membership change ([`super::watch`]) is answered once this grows.
    pub(super) membership_reads: u64,
}

impl Executor {
    /// Run blocking `work` in a thread; its answer goes back to the driver.
    pub(super) fn background(
        &self,
        work: impl FnOnce() -> ClusterInput + Send + 'static,
    ) -> JoinHandle<()> {
        let results = self.results.clone();
        tokio::task::spawn_blocking(move || {
            let _ = results.send(work());
        })
    }

    /// Carry out every queued command, feeding immediate answers back, and
    /// log events and write trace records as they come.
    pub(super) fn drain(&mut self, driver: &mut ClusterDriver) {
        // The per-entry options of the table in force, once per drain that
        // spawns (the replicated cltab may have changed since the last).
        let mut options_fresh = false;
        loop {
            while let Some(event) = driver.poll_event() {
                self.log_event(event);
            }
            while let Some((record, text)) = driver.poll_trace() {
                if let Some(r) = self.recorder.as_mut() {
                    r.records += 1;
                    r.writer.write(&record);
                    r.digest.update(text.as_bytes());
                    r.digest.update(b"\n");
                }
            }
            let Some(command) = driver.poll_command() else {
                if let Some(r) = self.recorder.as_mut() {
                    r.mark(self.me, self.clock.now());
                }
                return;
            };
            if !options_fresh && matches!(command, ClusterCommand::Spawn { .. }) {
                self.processes.set_table(driver.init().table());
                options_fresh = true;
            }
            if let Some(input) = self.carry_out(command) {
                driver.handle(self.clock.now(), input);
            }
        }
    }

    fn carry_out(&mut self, command: ClusterCommand) -> Option<ClusterInput> {
        let me = self.me;
        match command {
            ClusterCommand::ReadMembership { seq } => {
                // A cycle starts: the previous one is over, and with it
                // the warnings it no longer saw.
                self.end_cycle_warnings();
                self.membership_reads += 1;
                let reader = self.membership.clone();
                self.background(move || match reader {
                    MembershipReader::Source(m) => match m.members() {
                        Ok(members) => ClusterInput::MembershipRead {
                            seq,
                            report: MembershipReport::Members(members),
                        },
                        Err(e) => {
                            ClusterInput::MembershipFailed { seq, error: membership_failure(e) }
                        }
                    },
                    MembershipReader::Heartbeats(store) => {
                        let read_at = wall(SystemTime::now());
                        match heartbeat::report(&*store) {
                            Ok(beats) => ClusterInput::MembershipRead {
                                seq,
                                report: MembershipReport::Heartbeats { read_at, beats },
                            },
                            Err(e) => {
                                ClusterInput::MembershipFailed { seq, error: membership_failure(e) }
                            }
                        }
                    }
                });
                None
            }
            ClusterCommand::ReadNodes { seq, asks } => {
                // One blocking task per node, each answering on its own: a
                // hung mount delays only its node's answer (the driver's
                // read deadline covers it).
                for group in asks.chunk_by(|a, b| a.node == b.node) {
                    let (store, stamps) = (self.store.clone(), self.stamps.clone());
                    let group = group.to_vec();
                    self.background(move || {
                        let read_at = wall(SystemTime::now());
                        let mut reports = Vec::with_capacity(group.len());
                        for ask in group {
                            let (node, file) = (ask.node, ask.file);
                            let (report, stamp) = read_file_stamped(&*store, node, file, ask.known);
                            if let (Some(stamp), SharedFile::Hactl | SharedFile::Cltab) =
                                (stamp, file)
                            {
                                let mut stamps = stamps.lock().unwrap_or_else(|p| p.into_inner());
                                stamps.insert((node, file), stamp);
                            }
                            reports.push(report);
                        }
                        ClusterInput::NodesRead { seq, read_at, reports, unchanged: vec![] }
                    });
                }
                None
            }
            ClusterCommand::Copy { seq, file, from, bytes, mtime } => {
                let (store, stamps) = (self.store.clone(), self.stamps.clone());
                self.background(move || {
                    let name = store.describe(me, file);
                    let stamp = stamps.lock().map(|s| s.get(&(from, file)).copied()).ok().flatten();
                    let written = store
                        .write(me, file, &bytes, Some(copy_mtime(stamp.as_ref(), mtime)))
                        .and_then(|()| store.stat(me, file));
                    match written {
                        Ok(Some(stamp)) => ClusterInput::CopyDone { seq, id: stamp.content_id() },
                        Ok(None) => ClusterInput::CopyFailed {
                            seq,
                            error: IoFailure::other(
                                format!("cannot write {name}"),
                                io::ErrorKind::NotFound,
                                "vanished right after it was written",
                            ),
                        },
                        Err(e) => ClusterInput::CopyFailed {
                            seq,
                            error: IoFailure::new(format!("cannot write {name}"), &e),
                        },
                    }
                });
                None
            }
            ClusterCommand::WriteClstat { seq, status } => {
                // The changed group lines first (a few bytes, only when a
                // line changed), with this node's wall clock.
                let now_ms = wall(SystemTime::now()).0;
                if let Err(e) = self.group_moves.note(&status, now_ms) {
                    // Every clstat write meets it while the disk refuses.
                    self.say(format!("group moves {e}"), || format!("group-change record: {e}"));
                }
                // On the loop, as plain `clinit` writes it.
                let result =
                    replace_atomic(&self.clstat, status.render().as_bytes()).map_err(|e| {
                        IoFailure::new(format!("cannot write {}", self.clstat.display()), &e)
                    });
                Some(ClusterInput::StatusWritten { seq, file: SharedFile::Clstat, result })
            }
            ClusterCommand::WriteHastat { seq, published } => {
                if self.hastat_write.as_ref().is_some_and(|h| !h.is_finished()) {
                    let error = busy(self.store.describe(me, SharedFile::Hastat));
                    return Some(ClusterInput::StatusWritten {
                        seq,
                        file: SharedFile::Hastat,
                        result: Err(error),
                    });
                }
                let store = self.store.clone();
                self.hastat_write = Some(self.background(move || {
                    let result = write_hastat(&*store, me, &published);
                    ClusterInput::StatusWritten { seq, file: SharedFile::Hastat, result }
                }));
                None
            }
            ClusterCommand::WriteHeartbeat { seq, payload: Some(record), .. } => {
                // ranked's record, written whole by rename; only the engine
                // commands it (no executor task writes one on its own).
                let (store, leaving) = (self.store.clone(), self.leaving.clone());
                self.heartbeat_write = Some(self.background(move || {
                    let left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    let result = if *left {
                        Ok(())
                    } else {
                        store.write(me, SharedFile::Heartbeat, &record, None).map_err(|e| {
                            let name = store.describe(me, SharedFile::Heartbeat);
                            IoFailure::new(format!("cannot write {name}"), &e)
                        })
                    };
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result }
                }));
                None
            }
            ClusterCommand::WriteHeartbeat { seq, .. } => {
                if self.heartbeat_write.as_ref().is_some_and(|h| !h.is_finished()) {
                    let error = busy(self.store.describe(me, SharedFile::Heartbeat));
                    let file = SharedFile::Heartbeat;
                    return Some(ClusterInput::StatusWritten { seq, file, result: Err(error) });
                }
                let (store, leaving) = (self.store.clone(), self.leaving.clone());
                self.heartbeat_write = Some(self.background(move || {
                    let result = beat_unless_leaving(&*store, me, &leaving);
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result }
                }));
                None
            }
            ClusterCommand::RemoveHeartbeat { seq } => {
                let (store, leaving) = (self.store.clone(), self.leaving.clone());
                self.removal = Some(self.background(move || {
                    let mut left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    *left = true;
                    let result = heartbeat::remove(&*store, me);
                    ClusterInput::StatusWritten { seq, file: SharedFile::Heartbeat, result }
                }));
                None
            }
            ClusterCommand::Spawn { id, group, tag, level, command, not_after } => {
                let now = self.clock.now();
                let label = format!("{group}/{tag}");
                // At or after the not-after time (the lease is judged lost
                // from that very instant), as the command's contract says.
                if let Some(limit) = not_after.filter(|limit| now >= *limit) {
                    let error = SpawnFailure::TooLate { late_by: now.saturating_sub(limit).0 };
                    return Some(ClusterInput::SpawnResult { id, result: Err(error) });
                }
                info!("{label} {id} starting at level {level}: {command}");
                let result = self.processes.spawn_child(id, &group, &tag, &level, &command);
                match &result {
                    Ok(pid) => info!("{label} {id} is pid {pid}"),
                    // Said by the driver's `SpawnFailed` event (once per
                    // try, at most one a second once retries settle).
                    Err(SpawnFailure::Starved { .. }) => {}
                    Err(e) => error!("{tag} {id}: {e}"),
                }
                if let Ok(pid) = &result {
                    self.watch_group(id, *pid);
                }
                self.labels.insert(id, label);
                Some(ClusterInput::SpawnResult { id, result })
            }
            ClusterCommand::Signal { id, signal } => {
                let label = self.labels.get(&id).cloned().unwrap_or_else(|| id.to_string());
                match self.processes.signal_child(id, signal) {
                    Ok(true) => info!("{label}: sent {signal} to its process group"),
                    Ok(false) => debug!("{label}: {signal} not sent: already reaped"),
                    Err(e) => warn!("{label}: {signal} failed: {e}"),
                }
                None
            }
            ClusterCommand::Fence { seq, node } => {
                let fence = self.fence.clone();
                self.background(move || {
                    let result = fence_result(fence.fence(node), node, FenceProof::LogSuffices);
                    ClusterInput::FenceDone { seq, node, result }
                });
                None
            }
            ClusterCommand::Exit => {
                self.exit = true;
                None
            }
            command @ (ClusterCommand::KillAllNow
            | ClusterCommand::Persist { .. }
            | ClusterCommand::ArmWatchdog { .. }
            | ClusterCommand::FenceRanked { .. }) => self.carry_out_ranked(command),
        }
    }

    /// A control-socket request.
    pub(super) fn request(
        &mut self,
        driver: &mut ClusterDriver,
        cltab: &std::path::Path,
        request: Request,
        table: Option<Result<Cltab, String>>,
    ) -> WireReply {
        let now = self.clock.now();
        // The connection task read the cltab (bounded, off the loop) for
        // the requests that need it.
        let reload = |driver: &mut ClusterDriver| match table {
            Some(Ok(table)) => {
                driver.handle(now, ClusterInput::Client(ClientRequest::Reload { table }));
                Ok(())
            }
            Some(Err(e)) => {
                error!("keeping the last good cltab: {}", crate::daemon::escape(&e));
                Err(e)
            }
            None => Ok(()),
        };
        match request {
            Request::Shutdown => {
                info!("shutdown requested by a client");
                let reply = driver.handle(now, ClusterInput::Client(ClientRequest::Halt));
                WireReply::ok(reply.message())
            }
            Request::Status => {
                let init = driver.init();
                let status = init.status();
                let groups: Vec<serde_json::Value> = status
                    .groups
                    .iter()
                    .map(|(g, s)| serde_json::json!({"group": g, "level": s.level, "state": s.state.as_str()}))
                    .collect();
                WireReply::ok("status").with_status(serde_json::json!({
                    "pid": std::process::id(),
                    "cltab": cltab.display().to_string(),
                    "processes": self.processes.live(),
                    "containment": self.processes.containment().describe(),
                    // Process-group mode: escaped descendants re-parented
                    // to mosha, stopped at its exit (README, Containment).
                    "orphans": self.processes.orphans(),
                    "child_output": crate::daemon::output_status(self.processes.output()),
                    "shutting_down": init.is_shutting_down(),
                    "groups": groups,
                }))
            }
            Request::Reread => match reload(driver) {
                Ok(()) => WireReply::ok("cltab reloaded"),
                Err(e) => WireReply::err(e),
            },
            Request::Tell { group, level } => {
                if let Err(e) = reload(driver) {
                    return WireReply::err(e);
                }
                info!("tell {group} {level}");
                let input = ClusterInput::Client(ClientRequest::Tell { group, level });
                let reply = driver.handle(now, input);
                if reply.is_ok() {
                    WireReply::ok(reply.message())
                } else {
                    WireReply::err(reply.message())
                }
            }
        }
    }

    pub(super) fn reap(&mut self, driver: &mut ClusterDriver) {
        for input in self.processes.reap() {
            let input = match input {
                clinit_engine::init::Input::Exited { id, status, lingering } => {
                    if !lingering {
                        self.unwatch_group(id);
                    }
                    ClusterInput::ChildExited { id, status, lingering }
                }
                clinit_engine::init::Input::GroupGone { id } => {
                    self.unwatch_group(id);
                    ClusterInput::GroupGone { id }
                }
                _ => continue,
            };
            driver.handle(self.clock.now(), input);
        }
    }
}

fn busy(what: String) -> IoFailure {
    IoFailure::other(what, io::ErrorKind::WouldBlock, "the previous write has not finished")
}

/// Write my heartbeat, unless `mosha` is leaving (then it stays removed).
fn beat_unless_leaving(
    store: &dyn SharedStore,
    me: u32,
    leaving: &Mutex<bool>,
) -> Result<(), IoFailure> {
    let left = leaving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *left {
        return Ok(());
    }
    heartbeat::beat(store, me)
}

/// Whether a fence that only logged (no `--stomith` command) counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FenceProof {
    /// classic: the original's STOMITH was a log line when no command was
    /// configured, and the policy went on as if fenced.
    LogSuffices,
    /// ranked: a fence must prove the target's services are dead; a log
    /// line proves nothing, so it is a failure.
    CommandRequired,
}

/// The log line of a fence command that succeeded.
pub(super) fn fence_done_line(node: u32, output: &str) -> String {
    format!("STOMITH node {node}: done{}", clinit_engine::cluster::input::output_tail(output))
}

/// A fence hook's outcome as the driver's `FenceDone` result.
pub(super) fn fence_result(
    outcome: FenceOutcome,
    node: u32,
    proof: FenceProof,
) -> Result<(), FenceFailure> {
    match outcome {
        FenceOutcome::Logged if proof == FenceProof::LogSuffices => Ok(()),
        FenceOutcome::Logged => Err(FenceFailure::Refused {
            status: "no fence command".into(),
            output: "configure --stomith to fence under ranked".into(),
        }),
        FenceOutcome::Done { output } => {
            // It succeeded: info, one line, no empty output tail.
            info!("{}", fence_done_line(node, &output));
            Ok(())
        }
        FenceOutcome::Failed { reason, output } => {
            Err(FenceFailure::Refused { status: reason, output })
        }
    }
}
