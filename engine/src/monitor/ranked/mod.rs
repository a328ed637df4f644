//! `ranked`: fast, fenced, collision-free failover, as a pure machine.
//!
//! One [`Ranked`] runs per node. The cluster driver feeds it [`Input`]s
//! (membership, the other nodes' heartbeat records, its own groups' status,
//! results of its commands) with the node's boot-clock time
//! (CLOCK_BOOTTIME: it keeps running through suspend), and carries out the
//! [`Command`]s it answers with. [`Ranked::poll_timeout`] says when to call
//! again with [`Input::Tick`]. No clock, no I/O, no randomness.
//!
//! # The safety argument
//!
//! *Placement* is by rank ([`rank`]): each wanted group orders the eligible
//! live members (preferred nodes from `hactl`'s third column, then
//! rendezvous hashing), and a node plans a group only once every better
//! ranked candidate had its slot. Views can differ, so rank alone only makes
//! collisions rare; safety rests on the three rules below.
//!
//! *Starting needs a claim* ([`claims`]). A node tells a group its wanted
//! level only under a claim granted by a quorum ([`quorum`]: a majority of
//! the replicated known membership, exact halves to the tie-breaker's side),
//! and each node grants at most one live claim per group, persisted before
//! published. Two quorums intersect, so two nodes never hold the same claim.
//!
//! *Running needs a lease* ([`lease`]). Each heartbeat carries the node's
//! (incarnation, counter) and its acknowledgements of everybody else's. A
//! node's lease lasts H from the emission of a heartbeat that a quorum has
//! acknowledged; at `deadline − δ` the node kills its services with SIGKILL
//! (no graceful escalation), and a separate watchdog process
//! ([`watchdog`]), armed with the same deadline, does it if the monitor
//! froze. Every spawn carries that deadline as its not-after time, so a
//! command the executor runs late cannot outlive the lease.
//!
//! *Taking over needs proof that the holder stopped*. A claim of X is void,
//! and its group may move, only when (1) X published `released` (it runs
//! nothing, confirmed), or (2) a fence of X's incarnation succeeded, or
//! (3) without a fence command, a quorum has durably revoked X (promised
//! never to acknowledge X beyond a counter) for `H·(1+ρ)+δ` on the taker's
//! clock and X runs a watchdog and did not publish `lost`. In case (3) the
//! revoking quorum meets every quorum X could use to extend its lease, so
//! X's lease ended by then, and its kill (monitor or watchdog) had δ to
//! land. Revocations are durable: a node restarted, or re-reading X, never
//! acknowledges beyond its bound until X publishes a release or a new
//! incarnation. With a fence command, (3) is never used: a paused VM pauses
//! its watchdog too, so only a fence proves it stopped.
//!
//! Unknown is never absent: a torn or unreadable record leaves the last good
//! one standing (its groups stay where they are), and a member never read
//! blocks planning until it is void. A node that just started counts its
//! last contact with everyone from its own start, and ages are always the
//! observer's own: no node's mtime is compared with another node's clock.
//!
//! # Constraints of a shared filesystem
//!
//! * H must exceed P + an acknowledgement round trip (two visibility
//!   delays, two read intervals and a write, at p99.99) + δ, or leases
//!   lapse on healthy nodes. [`RankedParams::validate`] checks the part
//!   this node controls, `H > 3P + δ` (its period, two read intervals and
//!   δ); what is left, `H − 3P − δ` (1 s with the defaults), is the budget
//!   for two visibility delays and a write at p99.99.
//! * Read deadlines stay ≤ H/4, and no cycle waits for every node: a read
//!   that misses its deadline is "unknown" for that cycle.
//! * Each node publishes one checksummed record ([`record`]), written whole
//!   by rename; NFS needs `noac`/`lookupcache=none`, or direct reads.
//! * The watchdog never touches the shared filesystem.
//! * Heartbeat-file membership judges suspicion by counter changes, never
//!   by comparing mtimes with the local clock.
//! * `--timeout` is not used under `ranked`: the original's timeout/3
//!   heartbeat is far too slow for H ≤ 2 s. H sets every time (P is H/16,
//!   read deadlines H/4), and a record older than 3·H counts as stale
//!   wherever an age is shown (`AnyPolicy::timeout`).

//! # Refinements found by the interleaving tests
//!
//! * **Orphans.** A monitor killed with -9 leaves its services running; a
//!   new monitor's init machine knows nothing of them, so its record would
//!   name nothing while a group runs. The executor reports them
//!   ([`Input::Leftovers`]); the new monitor kills them before it holds
//!   anything and publishes `lost` while they survive (D state). A member
//!   that publishes `lost` is fenced whatever its record names, and nobody
//!   plans while a member that is not void publishes `lost` (the simulator's
//!   seed 157 at N = 3, 75 s of double owner before).
//! * **A `lost` word is acted on only while it is current.** A `lost`
//!   record is fenced only if it acknowledges a record of the fencer written
//!   within H (`Rules::lost_fence_needs_current_record`), so it is at most
//!   `H·(1+ρ)` old whatever the storage's delay; a `lost` record carries
//!   acknowledgements for that reason, a learner's too. Slow storage (a
//!   6.6 s fs delay at N = 5, seed 36) otherwise showed two just-restarted
//!   nodes a `lost` written before the member's retried kill landed, and a
//!   released, healthy node was shot. A `lost` member that cannot read is
//!   fenced once it reads again or falls silent (a quorum revokes it); until
//!   then nobody plans, so the cost is availability, never a double owner.
//!   An unconfirmed kill is retried with every heartbeat.
//! * **A silent member still listed up is waited for.** Silence may be slow
//!   shared storage, not death: such a member loses its own lease and
//!   releases by itself. It is fenced only once its lease and watchdog have
//!   surely ended, plus 2P to see the release; a member listed down is
//!   fenced at once. "Surely ended" is counted from the revocation by a
//!   fencer that hears no strict majority of the voters by their records
//!   (an exact half, always at N = 2: nothing there tells a slow shared
//!   filesystem from the member's own silence;
//!   `Rules::exact_half_waits_from_revocation`), and otherwise as the lease
//!   wait counts it (`Rules::release_wait_from_last_heartbeat`):
//!   `H·(1+ρ)+δ` after this node first saw the member's last heartbeat,
//!   when that heartbeat is at or beyond every revocation bound, and else
//!   after the first sight of a quorum of revocations. Why the earlier
//!   start is sound: each revoker acknowledged X up to its bound and never
//!   beyond, and every quorum that acknowledged a heartbeat of X shares a
//!   revoker with the revoking quorum, so X's lease rests on a heartbeat
//!   at or below the largest bound, written before this node first saw one
//!   at or beyond it; X's deadline (on its clock) is H after that write,
//!   `H·(1+ρ)` on this node's, and its kill lands within δ. Counted from
//!   the revocation instead, a dead owner listed up was fenced
//!   `suspect_after` and a revocation round (about 1.8 s) later than its
//!   lease allowed: most of the unavailability at N = 10 (test
//!   `a_silent_dead_owner_is_fenced_once_its_lease_surely_ended_counted_from_its_last_heartbeat`).
//!   Only the fence's timing changes, never what makes a claim void, so
//!   safety is unchanged (not fencing is always safe). The cost: a live
//!   member that went silent to a lease holder now has 2P after its lease
//!   ended, not 2P plus that 1.8 s, for its release to be seen.
//! * **Epochs.** A node that lost its lease and released starts a new lease
//!   epoch whose first counter (`floor`) it publishes; a revocation bound
//!   below a node's floor is moot (the node released since), and grants
//!   name the epoch and the request, so an old grant never counts again.
//!   A void proven by the lease wait (revoked up to a bound, the wait
//!   passed) is kept for that epoch, except by a node that lifts its own
//!   revocation of the member: its acknowledgements then go beyond the
//!   bound, so a new lease of the member may rest on them, in the same
//!   epoch (a node that released and acquires again keeps its floor). A
//!   void that stuck past the lift kept a group down for good (2 nodes,
//!   two pauses). A fence's proof is not forgotten: it lives in the fence
//!   votes, until a new incarnation.
//! * **Fence votes go with their fencer** and vote only `H·(1+ρ)+δ` after
//!   they are first seen (a fence voids its target's claims at once, but a
//!   lease elsewhere may still rest on the target's last real
//!   acknowledgements).
//! * **A fence vote only completes an exact half.** The lost tie-breaker's
//!   fence vote joins a set (of acknowledgements, revocations or grants)
//!   only when the set's own voters, fence votes not counted, are at least
//!   half of the voters: it turns an exact half into a majority (the
//!   2-node survivor: 1 of 2), never a minority into the tie-breaker's
//!   half. A real grant or acknowledgement is exclusive; a fence vote is
//!   not: two nodes that read each other late (a slow shared filesystem)
//!   may each hear an exact half, each fence the tie-breaker, and each see
//!   only its own fence, so "with every *known* fencer" lets each spend the
//!   vote alone. Two sets that count the vote under this rule each hold at
//!   least N/2 real voters out of the N − 1 others, so they share a real
//!   voter, whose grants are exclusive: quorum intersection holds without
//!   any node knowing of the other fences. (Simulator seed
//!   8185498729148515470 at N = 4, a 7.3 s visibility delay: nodes 2 and 3
//!   both fenced node 1 and claimed groups with {2} + vote and {3} + vote,
//!   0.3 s of double owner before.)
//! * **Only a voter fences the lost tie-breaker.** That fence is the
//!   half's vote, and a learner is in no half. A learner that did fence it
//!   (booting beside a tie-breaker the other voter had already fenced)
//!   spoiled the vote: a vote goes only with all its fencers, the learner
//!   is in no voter's set, and the voter holding its lease on that vote
//!   lost it, stopping every group until the dead node's next incarnation
//!   (simulator N = 3 seed 6 with two voters: 1,400 group-s).
//! * **Only a voter fences at all** (`Rules::fence_by_voters_only`). A
//!   fence proves its target void only to the nodes that read the fencer's
//!   record, and a learner's record is read by the voters alone. A learner
//!   that fenced a frozen voter left the other learners, the one ranked
//!   first for the frozen owner's group among them, waiting for the voters
//!   to change before they saw the void (simulator N = 10 seed 1: 7.2 s
//!   from the fence to the first plan). Every node reads the voters, so a
//!   voter's fence is seen by all within a read.
//! * **Compare-and-fence.** A fence command carries a guard; the executor
//!   skips it if the target's record shows it came back.
//! * **Resuming.** A monitor that did not step for more than H/2 (frozen,
//!   hung executor) counts its last contact with everyone from then.
//! * **wait_for_all** means every member acknowledged this incarnation.
//! * **A node never counts a fence of its own older incarnation.** The
//!   fence vote a survivor publishes lasts, for the survivor, until it
//!   reads the fenced node's new incarnation, which may be late (its
//!   membership source still lists the node down). The rebooted node reads
//!   that vote at once; were it to count it, a tie-breaker would take the
//!   vote against itself as its half decided, skip wait_for_all and hold a
//!   lease alone beside the survivor's lease on the same vote: two
//!   disjoint quorums (simulator N = 2 seed 1: the rebooted tie-breaker
//!   then fenced the healthy survivor).
//!
//! # Fencing only when it must
//!
//! Not fencing is always safe (takeover needs a void claim, and a fence is
//! only one way to make it void), so these rules only trade failover time
//! for fewer fences of live nodes:
//!
//! * **Only a lease holder fences** (the tie-breaker's fence of an exact
//!   half aside). A fence serves a takeover, and only a lease holder can
//!   take over. A node without a lease (on a minority side, under fs
//!   delays beyond the lease's budget, unable to read) cannot tell its own
//!   trouble from the target's; Pacemaker likewise fences only from the
//!   quorate partition. The designated fencer is the lowest heard member
//!   whose record says it holds its lease.
//! * **A revoked node that is still heard is waited for.** When a quorum
//!   has revoked X but this node saw X's counter move within the last two
//!   heartbeat periods, X is alive (whatever the membership source says)
//!   and cannot renew its lease: it kills its services and publishes its
//!   release within `H·(1+ρ)+δ` (counted as for a silent member, above).
//!   The fencer waits that long plus 2P for
//!   the release and fences only if it does not come; a node that falls
//!   silent for 2P meanwhile is fenced at once (it may be paused). A dead
//!   owner is so fenced at most 2P after its last write.
//! * **A membership verdict concerns one incarnation.** "Down" from the
//!   membership source revokes the incarnation that was current when the
//!   verdict came; a new incarnation seen afterwards (a reboot faster than
//!   the source's detection) is judged by its counter alone, so it is not
//!   revoked, and then fenced, on its predecessor's verdict.
//! * **A node heard since the verdict is judged by its counter**
//!   (`Rules::heard_overrides_down`). Once its counter has moved after the
//!   source first listed it down, and while it is not silent, the verdict
//!   stops counting: its revocation can be lifted (it released, or the
//!   lifting round completes) as if it were listed up. Safe because the
//!   verdict only ever hastens a revocation, and a revocation made or kept
//!   later only delays a takeover; the lease argument rests on
//!   acknowledgements alone. Why: after a partition that left no side a
//!   majority, every node revoked every node across it, and the released
//!   records that crossed once it healed could not lift those revocations
//!   while the source, slower than the storage, still listed the other
//!   side down (N = 10 seed 13: five groups down 5 s after the heal).
//! * **Old news is not a refusal** (`Rules::must_move_fence_needs_current_record`).
//!   Past the release wait, a member listed up whose latest record says
//!   `holding` but acknowledges nothing the fencer emitted since the
//!   member's lease surely ended was written before that end: slow storage
//!   is still delivering it, in bursts, with the release behind it. It is
//!   waited for while its counter moved within H (uncapped N = 2 seeds 146,
//!   160 and 267 of the simulator: fenced a fraction of a second before
//!   the release showed). A paused or dead member was last heard more than
//!   H before the wait ends, so its fence is not delayed.
//! * **A blind fencer fences nobody listed up** (`Rules::blind_fencer_waits`).
//!   A node that has read no new copy of its own record for H (its reads
//!   time out or fail, its cycles lag beyond H) cannot tell its own
//!   blindness from a member's silence; a lone tie-breaker at N = 2 so
//!   fenced the healthy other node (seed 211). The cluster loop reads the
//!   node's own record back for this. A member the
//!   membership source lists down is fenced as before, and so is the lost
//!   tie-breaker of an exact half (that fence is the half's vote).
//!   A node for which every read of every other member has failed for H
//!   is blind too, though its own record reads back
//!   (`Rules::blind_when_every_peer_read_fails`): under a one-way
//!   partition (it cannot read the others' files) it fenced the healthy
//!   owner it could not read (the simulator's N = 3 seed 627). A crashed
//!   member's record stays readable on shared storage, so its fence is
//!   not delayed by this.
//!
//! # Liveness rules
//!
//! * **A lapsed owner goes last** (`Rules::lease_loss_yields`). For 2 H
//!   after its lease runs out, a node plans the groups it held only after
//!   every other candidate's rank slot. Its watchdog has killed them, the
//!   next-ranked node starts at its own slot, and when the lapsed node's
//!   lease came back a second later its new claim outranked that attempt
//!   and stopped it: one more restart per lapse under flaky writes (N = 3
//!   seed 2: 69.6 unavailable group-s, 16.3 with the rule). A lapse that
//!   comes with a voter change (fence votes pause for it) is the change's
//!   own short cost and keeps the node's rank.
//! * **A refused tell gives the claim up.** When the init machine refuses
//!   a tell (no such group: this node's `cltab` lacks it, as after a
//!   restart with a `cltab` that does not parse), the claim asked for it is
//!   released and the node backs off from the group as after a failed
//!   test ([`RankedNotice::TellRefused`]); the next-ranked node takes it.
//! * **A claim that makes no progress is released** after
//!   [`RankedParams::stall_after`] (10 s): a claimed group that neither
//!   runs nor is in a transition, with no status change for that long, is
//!   given up with the same back-off ([`RankedNotice::Stalled`]). Without
//!   these two, a claim whose tells take no effect stood as long as its
//!   node held its lease, and every other node saw an attempt and waited
//!   (a 50-minute outage in the simulator).
//!
//! # Operational rules
//!
//! * **Voters.** In a cluster larger than `max_voters` (5), only the lowest
//!   members vote: a quorum is a majority of the voters, for leases,
//!   revocations, claims, the tie-breaker and membership changes, and only
//!   voters publish acknowledgements, revocations and grants. The argument
//!   above holds with "members" read as "voters" (two voter majorities
//!   intersect); a membership change moves the voter set by at most one
//!   node, so the old and new voter majorities intersect too. Learners are
//!   judged (revoked, voided, fenced) by the voters like any member, and a
//!   learner reads only the voters' records
//!   ([`RankedParams::learners_read_voters`]): it knows the other members
//!   through the voters' revocations, fence votes and grants, so a
//!   period's reads are O(N·V) for the cluster, not O(N²). A dead voter is
//!   replaced by a learner (see "Dead voters").
//! * **Early claim.** The best-ranked candidate asks for the claim on a
//!   group while its holder is revoked by a quorum but not void yet, and a
//!   new request is published at once: the grants then come in the step
//!   that voids the holder (a fence result, a fence vote read), not a claim
//!   round later. A request is only a wish, so safety is unchanged.
//! * **Stickiness and failback.** A running group stays where it runs;
//!   with `failback` it moves back to a better-ranked node that has held
//!   its lease for `failback_after`, at most once per (group, node,
//!   incarnation). A failback is an ordinary stop here and a start there
//!   under a new claim: the safety rules above apply unchanged.
//! * **Leaving.** On [`Input::Leave`] (SIGTERM) the node stops its groups,
//!   plans nothing more, and releases its lease once they are idle: its
//!   published release voids its claims at once, so peers take over
//!   without the lease wait.
//! * **Mixed policies.** A member whose heartbeat file shows another
//!   policy (`classic`'s `<pid> <seconds>` beat) is logged
//!   ([`RankedNotice::MixedPolicy`]) and nothing is taken over while it
//!   lasts.
//!
//! # Dead voters
//!
//! A voter that died votes "no" on every lease, revocation, claim and
//! change until it comes back, and nothing used to replace it: with five
//! voters, one crashed and two slow ones (cycle lags of seconds, beyond the
//! read deadline) left no lease anywhere although seven of ten nodes were
//! healthy; at N = 3 a node fenced early (powered off until someone boots
//! it) made every slow episode of either survivor an outage of every
//! group. So `ranked` replaces dead voters by itself
//! ([`RankedParams::replace_dead_voters`]), as Consul's autopilot cleans
//! up dead servers and etcd demotes and promotes members:
//!
//! * **Demote.** The lowest voter that holds its lease (no lower voter,
//!   not listed down and not void, publishes `holding`) proposes a voter
//!   change that demotes voter X to learner when the membership source has
//!   listed X down without a break for
//!   [`RankedParams::dead_voter_after`] (10 s) and X is surely out: its
//!   claims are void (fenced, released, or the lease wait passed), or a
//!   quorum revoked it `H·(1+ρ)+δ` ago (no lease rests on its
//!   acknowledgements any more). Never below
//!   [`RankedParams::min_voters`] (2).
//! * **Demote the unresponsive.** It also demotes a voter X that the
//!   membership source lists up but whose published acknowledgement of
//!   the proposer has not moved for `dead_voter_after` while the proposer
//!   held its lease (counted from the later of that, the proposer's lease
//!   and its adoption of the current configuration, since a voter just
//!   promoted published no acknowledgements as a learner). Such a voter
//!   (cycles lagging beyond the read deadline, reads failing, writes
//!   failing, a frozen monitor) votes "no" as a dead one does, and is not
//!   listed down: at N = 10, seed 14 of the capped sweep had voters 2 and 4
//!   lagging 3.6–5.2 s per cycle when voter 5 crashed, and every group was
//!   down for the 176 s of the crash (880 group-s) with seven healthy
//!   nodes; with this rule 15 group-s. Never below `min_voters` either.
//! * **Promote.** While fewer than `max_voters` members vote, it proposes
//!   promoting the lowest learner that the membership source lists up,
//!   that it hears (counter moving, not revoked) and whose record says it
//!   holds its lease: a lease shows the learner completed a round trip
//!   (its reads and writes work), so a voter just demoted as unresponsive
//!   is not promoted straight back. A demoted node that comes back is
//!   promoted this way; at N ≤ `max_voters` every member votes again.
//! * **Only changes of the current version are acknowledged.** A member a
//!   version or two behind (a learner whose reads came late) still
//!   publishes its acknowledgement of the change that made an earlier
//!   version, and that change can be valid in shape against the current
//!   voters too (demote X, promote X, demote X again). Acknowledged, it can
//!   never commit (a commit needs `replaces` = the current version) and,
//!   one acknowledgement per version, it blocked every later change on
//!   every node that took it. Dropping such an acknowledgement is safe:
//!   the node never acknowledges another change of that old version.
//! * **Members stay.** Only the voter set changes ([`Change::voters`]): X
//!   stays a member, judged like any (fenced when its groups must move, its
//!   claims void only by the usual proofs). Removing it from the members
//!   instead would make every grant to it count as void at once (a grant
//!   to a non-member names nobody), before its claims are proven void.
//!
//! Why it is safe: a voter change is a membership change as
//! [`membership`] defines it. It names the version it replaces, moves the
//! voter set by exactly one node, and commits only when strict majorities
//! of the old and of the new voters acknowledge it, each node acknowledging
//! one change per version: any old-voter majority and new-voter majority
//! intersect, whoever proposed the change and why. The rules above only
//! choose *when* to propose; a wrong verdict (X alive but listed down)
//! costs X its vote, not safety. Two strict majorities of voter sets that
//! differ by one node always intersect; an **exact half** holding the
//! tie-breaker does not: across a change from or to an even voter set, the
//! tie-breaker's half of one set and a majority of the other can be
//! disjoint. So while a voter change is under way (this node acknowledged
//! one that has not committed here, or a voter publishes another version or
//! a change it acknowledged), an exact half is no quorum, tie-breaker or
//! not (`Rules::tie_needs_settled_config`; found by seed 34 at N = 3,
//! where node 2, proposing to promote node 1, claimed a group as the
//! tie-breaker's half of {2, 3} while node 3 had committed {1, 2, 3} and
//! granted it to node 1: 0.65 s of double owner). A voter that is surely
//! out (void, or revoked by a quorum for the lease wait) does not count
//! here: its record stays as it was when it died.
//!
//! * **Only a change that can commit is proposed**: the proposer hears a
//!   strict majority of the old voters and of the new ones. A change that
//!   cannot commit stays pending for good (an acknowledgement is never
//!   withdrawn) and, by the rule above, takes the tie-breaker's half away
//!   (seed 11 at N = 3: node 1, the last voter of {1, 2}, proposed to
//!   promote node 3 back while node 2 lay fenced, and every group stopped
//!   for 37 minutes).
//! * **The last voter of two counts the other's fence vote**
//!   (`Rules::change_counts_fence_votes`). With voters {1, 3} and node 3
//!   fenced (a fence powers it off), promoting a learner needed node 3's
//!   acknowledgement, so the change was never proposed, and node 1's
//!   crash then stopped every group until node 3 booted again (N = 3 seed
//!   7 with `min_voters` 2: 4,575 group-s; 28 with the rule). Of exactly
//!   two old voters, the one the other fenced counts as acknowledging, in
//!   the commit and in the proposer's check. Safe because two changes of
//!   one version could then commit only if each voter outlived the other's
//!   successful fence; with four or more voters two pairs could each fence
//!   one of the other pair, so the rule is for two only.
//! * **No fence vote during a change** (`Rules::votes_need_settled_config`):
//!   while the configuration is unsettled, fence votes complete no half for
//!   leases, claims, revocations or fences, for the same reason as the
//!   tie-breaker's half above: an exact half of the old voters completed
//!   by a vote and a majority of the new ones can be disjoint. While the
//!   fenced node stays dead they cannot (with the vote only completing a
//!   half, a majority of the other voter set needs a real voter of that
//!   half); its new incarnation can, as the fencer counts the old one's
//!   vote until it reads the new one. Of the same voters, `wait_for_all`
//!   keeps the new incarnation from deciding an exact half; a strict
//!   majority of new voters needs no such wait. The lock-step test
//!   `a_fence_vote_during_a_voter_change_gives_a_double_owner` builds it
//!   (not found by the simulator): voters {1, 2}, node 2 fenced node 1
//!   and holds on {2} + 1's vote; node 1 reboots, unread by node 2, which
//!   proposes promoting learner 3; nodes 1 and 3 commit {1, 2, 3}, and
//!   node 2, cut off, never sees it. A new group is then claimed by node 2
//!   with {2} + 1's vote and by node 3 with {1, 3}: 9.45 s of double owner
//!   in 10 s, none with the rule. The cost is a lease that can lapse for
//!   the length of a change (a second or two; there, node 2's at its own
//!   proposal).
//!
//! Open: two voters that propose different changes of one version at once
//! can split the acknowledgements so that neither commits until a dead
//! voter returns (safety holds; only the lowest lease holder proposes, so
//! it takes two views that disagree about that); and a voter that dies
//! within a read round of adopting a change can leave a record with the
//! change still pending, which keeps the configuration unsettled until it
//! is proven out, and proving it out may itself need the tie-breaker's
//! half (the lock-step tests let such a voter publish first).
//!
//! At **N = 2** nothing is demoted (a change from two voters needs both).
//! At **N = 3** a dead node is demoted by default
//! ([`RankedParams::min_voters`] is 2), which leaves the two-node rules:
//! the tie-breaker (the lower survivor) keeps its lease alone when the
//! other dies or lags, and the other fences the tie-breaker after
//! `tie_fence_delay` when the tie-breaker is lost; with three voters,
//! either survivor's trouble stops every group while the third is down
//! (a fenced node stays powered off until someone boots it). In the
//! simulator (N = 3, 20 one-hour seeds, fs delays capped at H/4) this
//! took unavailability from 637.4 to 60.7 group-s per run. The price:
//! under fs delays beyond the lease's budget the two voters can fence
//! each other (the two-node shape), and one of those fences is needless:
//! 4 of 1,000 uncapped runs against 2 with three voters, never a double
//! owner. Earlier rounds kept 3 voters for two such runs, which the rules
//! above removed. Under heartbeat-file
//! membership there is no membership verdict, and nothing is demoted.
//! Tests: `dead_voters.rs` (each rule with its twin with the rule off).
//!
//! # Lifting a revocation
//!
//! A revocation used to stand until the revoked node released or
//! restarted. A node revoked by a minority (one peer missed its records for
//! a while: a truncated file, a one-way read fault) kept its lease on the
//! others' acknowledgements, with less margin, and a later unrelated crash
//! of another node then took the lease, and its services, away (NU1 saw 73
//! s of such a revocation on real nodes, then the outage). Now Z lifts its
//! revocation of (X, incarnation, bound k) in two phases:
//!
//! 1. **Withdraw** when X is heard again: listed up, its counter moving
//!    beyond k, not `lost`, and acknowledging a record Z wrote after the
//!    revocation (a round both ways). Z's records stop naming the
//!    revocation (once persisted), but Z still acknowledges X no further
//!    than k. If X falls silent again, the same revocation is published
//!    again.
//! 2. **Lift** (acknowledge X beyond k) once every other voter has
//!    acknowledged a record of Z written without the revocation.
//!
//! Why it is safe: a takeover of X's groups needs a quorum of grantors
//! that each judged X void; a judgement by the lease wait rests on a quorum
//! of revocations. Before the lift, Z's acknowledgements stay capped at k,
//! so every judgement that counted Z's revocation is covered by the lease
//! argument above. After the lift, every voter has read a record of Z
//! without it, and a reader never goes back to an older copy (a copy read
//! late is ignored, and a node's shared storage must not serve a copy older
//! than one it already served, the `noac` requirement above), so no voter
//! counts it any more: no quorum of revocations holding Z's can form while
//! X's lease rests on Z's new acknowledgements. A voter that cannot read Z
//! keeps the revocation standing: Z waits for every voter, never for a
//! quorum (the lock-step test
//! `lifting_a_heard_revocation_at_once_gives_a_double_owner` shows the
//! double owner of lifting without the round).
//!
//! # Known limits
//!
//! * A revocation is lifted only once every other voter has seen it
//!   withdrawn: while a voter is down or cannot read the revoker, a
//!   revocation of a healthy node stands as before (it has less margin for
//!   its lease, and may lose it, and its services, to a later fault).
//! * A lease needs a round trip: when one node of the last quorum cannot
//!   read another's records (`read-hang`, a one-way partition) or lags
//!   more than the lease's budget, no node of it holds a lease and every
//!   group stops until it ends, where `classic` runs on.
//! * A fence that lands within one heartbeat period and visibility delay of
//!   its target resuming from a freeze, or of a partition healing, cannot be
//!   told from a needed one (compare-and-fence narrows the window to that).
//! * A whole-node pause defeats the process watchdog for as long as it
//!   lasts: with a watchdog only, a paused owner and its successor may both
//!   have live processes until it resumes and kills them. With a fence
//!   command, takeover from a node that did not publish a release always
//!   waits for the fence, which covers a pause.
//! * With neither watchdog nor fence command, nothing is taken over from a
//!   node that may be alive unless `unsafe_takeover_unguarded` is set.
//!
//! # Driving it
//!
//! [`Ranked::new`] (node, [`RankedParams`], initial [`Config`], last
//! [`Durable`] state or `None`, own `ClStat`, boot-clock now); then
//! [`Ranked::step`] with every [`Input`] and [`Ranked::poll_timeout`] for
//! the next [`Input::Tick`]. Every command's result comes back as an input:
//! `Persist` → `Persisted`, `WriteRecord` → `Written`, `Fence` → `Fenced`,
//! `KillAllNow` → `KillDone`; `Tell` results arrive as the next `Own`.
//! Records are read with [`Record::parse`]; a parse error is
//! [`Read::Unknown`]. Only the engine writes heartbeats.

pub mod claims;
pub mod eligibility;
pub mod fencing;
pub mod lease;
pub mod membership;
pub mod quorum;
pub mod rank;
pub mod record;
pub mod watchdog;

mod machine;

#[cfg(test)]
mod dead_voters;
#[cfg(test)]
mod features;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod liveness;

pub use machine::{Command, Durable, FenceGuard, Input, Output, Ranked, RankedNotice, Read, Step};
pub use record::{
    fence_in_force, Change, Config, Epoch, LeaseState, NodeInc, NotLive, Record, Seen,
};

use crate::time::Millis;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Parameters of `ranked`, in milliseconds unless named otherwise. Every
/// field has a default (`#[serde(default)]`), so a scenario may set only
/// what it changes: `{"lease": 3000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RankedParams {
    /// H, the lease length: 2 s (to be confirmed by a sweep).
    pub lease: Millis,
    /// P, the heartbeat period: H/16 = 125 ms. Why not the issue's starting
    /// point H/8: the lease's round trip at fs delays of H/4 crosses a
    /// read interval (P/2) twice, and a record is up to P old when a
    /// voter acknowledges it; halving P cut the simulator's unavailable
    /// group-seconds at N = 10 (20 seeds, fs delays ≤ H/4) from 14.9 to
    /// 11.9, with fewer lease lapses under failing reads. The price: each
    /// node writes its record and reads its peers twice as often
    /// (sim/README, "the heartbeat period P = H/16").
    pub heartbeat: Millis,
    /// δ, the kill bound: a SIGKILL or cgroup kill lands within 250 ms.
    pub kill_bound: Millis,
    /// ρ, the bound on the ratio of two nodes' clock rates, minus one, in
    /// parts per million: 10,000 ppm = 1 % (NTP-disciplined clocks stay
    /// within 500 ppm; 1 % also covers an undisciplined VM clock).
    pub clock_rate_ppm: u64,
    /// Silence (no counter change, on the observer's clock) after which a
    /// node stops acknowledging another: 1.5 s (3H/4).
    pub suspect_after: Millis,
    /// Read deadline per record read: H/4 = 500 ms.
    pub read_deadline: Millis,
    /// Rank slot: the n-th ranked candidate plans only after the group was
    /// unplaced for n × slot: 500 ms.
    pub rank_slot: Millis,
    /// How long a node of an exact half without the tie-breaker waits,
    /// after revoking the tie-breaker, before fencing it: 2 s (H). The
    /// tie-breaker's side fences first.
    pub tie_fence_delay: Millis,
    /// A fence command is configured (`stomith` hook). Then takeover from a
    /// node that did not publish a release always needs a fence.
    pub fence_command: bool,
    /// This node runs a watchdog (default true).
    pub watchdog: bool,
    /// UNSAFE: take over from a node without watchdog or fence after the
    /// lease wait. Double owners become possible; off by default.
    pub unsafe_takeover_unguarded: bool,
    /// First retry of a failed fence after 1 s, doubling up to 4 s (2 H).
    /// The cap is short because nothing moves until a fence succeeds: with
    /// a fence device that fails 4 times in 5, a 16 s cap kept three
    /// groups down for 70 s (the simulator's N = 3 seed 10). Pacemaker
    /// likewise retries a failed fencing at once, at its next transition.
    /// A fence command that always fails is run every 4 s, and each
    /// failure is logged.
    pub fence_retry_min: Millis,
    pub fence_retry_max: Millis,
    /// Back-off after a failed test: 10 s, doubling up to 10 min.
    pub test_backoff: Millis,
    pub test_backoff_max: Millis,
    /// Failback: a running group moves back to a better-ranked node once
    /// that node has held its lease for `failback_after`. Off by default: a
    /// running group stays where it runs, because every move is an outage
    /// (Pacemaker's resource-stickiness, for the same reason). At most one
    /// failback per group to each (node, incarnation), so a node whose test
    /// then fails does not make the group bounce.
    pub failback: bool,
    /// How long a better-ranked node must hold its lease before a group
    /// fails back to it: 10 s (5 H).
    pub failback_after: Millis,
    /// A claim whose group makes no progress here for this long (neither
    /// running nor in a transition: an ignored tell, a plan or test that
    /// settled but never led to a start) is released, and the node backs
    /// off from the group as after a failed test, so the next-ranked node
    /// takes it: 10 s (5 H; a healthy plan → test → claim → start takes
    /// about 4 heartbeat periods, 1 s). Without it, a claim whose node
    /// can never start the group (its `cltab` lacks it) never lapses while
    /// the node holds its lease, and the group runs nowhere. Pacemaker
    /// bounds every resource operation with a timeout for the same reason.
    pub stall_after: Millis,
    /// At most this many voters (5): in a larger cluster only the lowest
    /// `max_voters` members vote on leases, revocations, claims and
    /// membership changes, and only voters publish acknowledgements,
    /// revocations and grants. Why: acknowledgements for all N nodes in
    /// every record cost O(N²) bytes read per period (tens of MB/s per
    /// reader at N = 1,000); with voters a record is O(1) for a learner and
    /// O(N) for a voter, so a reader's cost stays O(N). The other members
    /// are learners whose liveness the voters judge (etcd's learners).
    ///
    /// Why 5 and not every member up to 9 (measured at N = 10 with fs
    /// delays capped at H/4, seeds 5, 9 and 14, before dead-voter
    /// replacement): 10 voters gave 2,322, 3,195 and 2,986 unavailable
    /// group-s against 1,866, 3,160 and 4,202 with 5. It tolerates more bad
    /// voters (4 instead of 2) but every voter reads all N records every
    /// period and then stepped once per record (one step per read batch
    /// since: [`Input::Reads`]), so it doubled the voters' work at
    /// N = 10 and multiplied it by N/5 at large N, for no consistent gain:
    /// the outages of those seeds were lease round trips under fs delays,
    /// not lost voters. Dead voters are replaced instead
    /// ([`RankedParams::replace_dead_voters`]).
    pub max_voters: usize,
    /// A learner (a member outside the voter set) reads only the voters'
    /// records (default true): the voters judge every member's liveness
    /// and publish it (revocations, fence votes) with the grants that say
    /// where each group is claimed, so a learner needs nothing else. A
    /// node's reads per heartbeat period are then V for a learner and N
    /// for a voter: O(N·V) for the cluster instead of O(N²), as etcd's
    /// learners follow the leader only. The cluster driver turns it off
    /// under heartbeat-file membership, where each node's own reads are its
    /// membership view.
    pub learners_read_voters: bool,
    /// Dead-voter replacement (default true), as Consul's autopilot cleans
    /// up dead servers and etcd demotes and promotes members, done
    /// automatically: the lowest voter that holds its lease proposes to
    /// demote a voter that is surely dead (its claims proven void, or a
    /// quorum revoked it `H·(1+ρ)+δ` ago) and that the membership source
    /// has listed down for [`RankedParams::dead_voter_after`], or a voter
    /// listed up whose acknowledgement of it has not moved for that long
    /// (unresponsive: too slow, deaf or frozen to vote); then, while a
    /// voter seat is free, to promote the lowest learner it hears that
    /// holds its lease. The
    /// members never change, so a dead node stays a member (judged,
    /// fenced, its claims voided as before) and votes again once promoted
    /// after its return. One change at a time, each under the
    /// single-server rule; see the module doc ("Dead voters"). Off: the
    /// voters change only when an operator changes the membership
    /// ([`Input::ProposeMembers`]), and a dead voter votes "no" forever.
    pub replace_dead_voters: bool,
    /// How long the membership source must list a voter down, or a voter
    /// listed up must leave its acknowledgement of the proposer unmoved,
    /// before its demotion is proposed: 10 s (5 H), so that a `mosha -9`
    /// restart (a few seconds), a flapping source or a short stall does
    /// not churn the voters.
    pub dead_voter_after: Millis,
    /// Dead-voter replacement never demotes below this many voters: 2 by
    /// default (never fewer: a change from two voters needs both), so a
    /// 3-node cluster whose node died or was fenced drops to the two-node
    /// rules (the tie-breaker keeps its lease alone) instead of stopping
    /// every group at the next trouble of either survivor. Measured in the
    /// simulator (N = 3, 20 one-hour seeds, fs delays capped at H/4): 60.7
    /// unavailable group-s per run with 2 against 637.4 with 3 (classic:
    /// 193.3). The price is needless fences under fs delays beyond the
    /// lease's budget, where two voters can fence each other (the
    /// two-node shape): uncapped N = 3, seeds 1–1,000, 4 runs with a
    /// needless fence with 2 voters against 2 with 3 (delays of 3.6–5.6 s),
    /// and no double owner with either. Earlier rounds kept 3 for two such
    /// runs (uncapped seed 1, capped seed 36), which the dead-voter rules
    /// of this module (`own_restart_ends_vote`, `tie_fence_by_voters_only`,
    /// `change_counts_fence_votes`) removed. Set 3 to keep three voters.
    pub min_voters: usize,
}

impl Default for RankedParams {
    fn default() -> Self {
        let lease = Millis(2000);
        RankedParams {
            lease,
            heartbeat: Millis(lease.0 / 16),
            kill_bound: Millis(250),
            clock_rate_ppm: 10_000,
            suspect_after: Millis(lease.0 * 3 / 4),
            read_deadline: Millis(lease.0 / 4),
            rank_slot: Millis(500),
            tie_fence_delay: lease,
            fence_command: false,
            watchdog: true,
            unsafe_takeover_unguarded: false,
            fence_retry_min: Millis(1000),
            fence_retry_max: Millis(4_000),
            test_backoff: Millis(10_000),
            test_backoff_max: Millis(600_000),
            failback: false,
            failback_after: Millis(10_000),
            stall_after: Millis(10_000),
            max_voters: 5,
            learners_read_voters: true,
            replace_dead_voters: true,
            dead_voter_after: Millis(10_000),
            min_voters: 2,
        }
    }
}

/// A parameter set that cannot keep its promises.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamsError {
    #[error("lease {lease} must exceed 3 heartbeats + kill bound = {need}")]
    LeaseTooShort { lease: Millis, need: Millis },
    #[error("read deadline {read_deadline} exceeds lease/4 = {limit}")]
    ReadDeadline { read_deadline: Millis, limit: Millis },
    #[error(
        "suspect_after {suspect_after} must be at least 2 heartbeats and below the lease {lease}"
    )]
    Suspect { suspect_after: Millis, lease: Millis },
    #[error("heartbeat must be positive")]
    ZeroHeartbeat,
}

impl RankedParams {
    /// `H·(1+ρ) + δ`: how long a taker waits after a quorum revoked a node.
    pub fn takeover_wait(&self) -> Millis {
        lease::takeover_wait(self.lease, self.clock_rate_ppm, self.kill_bound)
    }

    /// How long a record just written may take to be seen by the fence
    /// pass's waits (a release on its way, a lease just acquired, a counter
    /// that still moves): two heartbeat periods, and at least H/4 (500 ms
    /// at the default H). Why the floor: these waits guard against fencing
    /// a healthy node behind slow storage, and what they wait for is a
    /// write, a visibility delay and a read, not the heartbeat cadence.
    /// They were 2P = 500 ms while P was H/8; when P became H/16 they
    /// would have halved, and the simulator's uncapped N = 2 seed 5 (a
    /// 4.4 s visibility delay) fenced a healthy node 250 ms sooner than its
    /// release showed.
    pub fn record_slack(&self) -> Millis {
        Millis((2 * self.heartbeat.0).max(self.lease.0 / 4))
    }

    /// Check the constraints of the module doc.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.heartbeat.0 == 0 {
            return Err(ParamsError::ZeroHeartbeat);
        }
        let p = self.heartbeat;
        let need = p + p + p + self.kill_bound;
        if self.lease <= need {
            return Err(ParamsError::LeaseTooShort { lease: self.lease, need });
        }
        let limit = Millis(self.lease.0 / 4);
        if self.read_deadline > limit {
            return Err(ParamsError::ReadDeadline { read_deadline: self.read_deadline, limit });
        }
        if self.suspect_after < p + p || self.suspect_after >= self.lease {
            return Err(ParamsError::Suspect {
                suspect_after: self.suspect_after,
                lease: self.lease,
            });
        }
        Ok(())
    }
}

/// Rules that the interleaving tests switch off one at a time to show that
/// each one is needed (every rule is on in production; this is not
/// configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Revocations are persisted before published and never lifted while
    /// the node is still running under the revoked incarnation.
    pub durable_revocation: bool,
    /// Start only under a quorum-granted claim.
    pub claims: bool,
    /// With a fence command, take over an unreleased node only by fence.
    pub pause_needs_fence: bool,
    /// Spawns carry a not-after time.
    pub spawn_deadline: bool,
    /// A node that lost its lease keeps publishing: its release voids its
    /// claims at once (off: it falls silent, and others must wait).
    pub publish_release: bool,
    /// The tie-breaker decides an exact half only once it has seen all.
    pub wait_for_all: bool,
    /// An unconfirmed kill is published as `lost` (needs a fence).
    pub lost_needs_fence: bool,
    /// A member is fenced for its `lost` word only while that record is
    /// current: it acknowledges a record of the fencer written within H
    /// (off: any `lost` record seen, however old; slow shared storage then
    /// shows a fencer a `lost` written before the member's kill landed and
    /// it released, and a healthy node is shot: the simulator's N = 5
    /// seed 36).
    pub lost_fence_needs_current_record: bool,
    /// A fence vote lasts only until a new incarnation is seen.
    pub vote_until_new_incarnation: bool,
    /// A node that restarted counts no fence vote against its own older
    /// incarnation: it is the new incarnation, and sees itself (off: a
    /// rebooted tie-breaker that reads the other node's record, which
    /// still carries the vote the fence left, takes that vote as the
    /// tie-breaker's side decided and holds a lease alone, while the other
    /// node, which has not seen the new incarnation yet, holds its own on
    /// the same vote: a split quorum, and a needless fence of the other
    /// node; the simulator's N = 2 seed 1).
    pub own_restart_ends_vote: bool,
    /// An exact half without the tie-breaker fences it (its vote).
    pub tie_fence: bool,
    /// A voter change counts a fenced old voter (its fence vote in
    /// force) with the old voters' acknowledgements when they are at least
    /// half of them, in the commit and in the proposer's check (off: the
    /// last voter of two, the other fenced and powered off, can never
    /// replace it by a learner, and its own crash then stops every group
    /// until the fenced node boots again: the simulator's N = 3 seed 7
    /// with `min_voters` 2).
    pub change_counts_fence_votes: bool,
    /// While a voter change is under way (`config_unsettled`), fence votes
    /// complete no half for leases, claims, revocations and fences, as the
    /// tie-breaker's exact half does not (`tie_needs_settled_config`): an
    /// exact half of the old voters completed by a vote and a majority of
    /// the new voters can be disjoint (off: a fencer that has not read its
    /// target's new incarnation counts the old one's vote while the new one
    /// votes with the new voters, and two nodes claim one group: the
    /// lock-step test `a_fence_vote_during_a_voter_change_gives_a_double_owner`).
    pub votes_need_settled_config: bool,
    /// Only a voter fences the tie-breaker of an exact half: the fence is
    /// that half's vote, and a learner is in no half (off: a learner that
    /// boots beside a tie-breaker the other voter already fenced fences it
    /// again; a fence vote goes only with all its fencers, and the learner
    /// is in no voter's set, so the voter's lease on that vote is lost and
    /// every group stops until the dead node's next incarnation: the
    /// simulator's N = 3 seed 6 with `min_voters` 2).
    pub tie_fence_by_voters_only: bool,
    /// Only a voter fences a member for its groups (or for `lost`), and the
    /// designated fencer is the lowest heard voter that holds its lease. A
    /// fence makes its target void only for the nodes that read the
    /// fencer's record, and a learner's record is read by the voters alone
    /// (`learners_read_voters`): off, a learner that fenced a frozen voter
    /// left every other learner unaware of the void until the voters were
    /// changed, and the learner ranked first for the frozen owner's group
    /// could not take it over (the simulator's N = 10 seed 1, fs delays
    /// capped at H/4: 7.2 s between the fence and the first plan).
    pub fence_by_voters_only: bool,
    /// A fence vote joins only a set whose own voters are at least half of
    /// the voters (it completes an exact half, never makes a minority
    /// half): two fencers unaware of each other cannot both spend it.
    pub tie_vote_completes_half: bool,
    /// Lifting this node's revocation of a member forgets the void it had
    /// proven of that member by the lease wait, and the lifted revocation
    /// no longer counts in this node's own judgement even before the lift
    /// is published: its acknowledgements go beyond the bound again, and a
    /// new lease may rest on them.
    pub lift_clears_void: bool,
    /// A node acknowledges at most one membership change per version.
    pub one_change_per_version: bool,
    /// A revoked node that is still heard is waited for (its release), not
    /// fenced at once.
    pub wait_for_heard_release: bool,
    /// Only a node holding its lease fences (the tie-breaker's fence
    /// aside).
    pub only_holders_fence: bool,
    /// A monitor that starts while service processes of an earlier
    /// incarnation live on ([`Input::Leftovers`]) kills them first and
    /// publishes `lost` until the kill is confirmed; nobody plans a group
    /// while a member that is not void publishes `lost`.
    pub kill_leftovers: bool,
    /// A member that publishes `lost` is fenced whatever its record shows
    /// (it holds processes it cannot stop, named or not).
    pub fence_any_lost: bool,
    /// A silent member still listed up by the membership source is fenced
    /// only after its lease and watchdog have surely ended (`H·(1+ρ)+δ`
    /// after the revocation, plus 2P) without a release seen.
    pub wait_for_silent_release: bool,
    /// A revoked member that is still heard and listed up, whose latest
    /// record says `holding` but was written before its lease surely ended
    /// (it acknowledges no record of this node emitted since then), is
    /// waited for as long as it stays heard: the record is old news behind
    /// slow shared storage, and the member's release is on its way. A
    /// `holding` record acknowledging a record emitted after that time
    /// (the member outlived its lease) is fenced, and so is a member that
    /// falls silent (off: fenced once the wait above ran out whatever its
    /// record's age, so a visibility delay beyond the lease's budget shot
    /// a healthy node a fraction of a second before its release showed;
    /// the simulator's uncapped N = 2 seeds 146, 160 and 267, with fs
    /// delays of 2.3–3.2 s).
    pub must_move_fence_needs_current_record: bool,
    /// A node that has read no new copy of its own record for H is blind
    /// (its reads time out or fail, its cycles lag beyond H) and fences no
    /// member that the membership source lists up: it cannot tell its own
    /// blindness from the member's silence. A member listed down is fenced
    /// as before, and the tie-breaker's fence is the half's vote, judged
    /// apart (off: a lone tie-breaker at N = 2 whose own reads timed out
    /// fenced the healthy other node; the simulator's uncapped N = 2 seed
    /// 211).
    pub blind_fencer_waits: bool,
    /// With [`Rules::blind_fencer_waits`]: a node for which every read of
    /// every other member has failed (unknown) for H is blind too, though
    /// its own record reads back. Its own reads of the shared storage are
    /// then the likelier fault than every peer's silence (off: a node
    /// that could not read the others' files, a one-way partition, fenced
    /// the healthy node it could not read 4.2 s later; the simulator's
    /// N = 3 seed 627 at `fs_delay_cap=4s`). A dead peer's record stays
    /// readable on shared storage (unchanged, not unknown), so this does
    /// not delay the fence of a crashed member; where the dead node
    /// serves its own files (openMosix `/mfs`), its fence waits for the
    /// membership source to list it down.
    pub blind_when_every_peer_read_fails: bool,
    /// For 2 H after its lease runs out, a node plans the groups it held
    /// (running, or in plan or test) only after every other candidate's
    /// rank slot (at most 2 H after it saw the group unplaced), so that
    /// the next-ranked node, which starts at its own slot, is not stopped
    /// by this node's new claim when its lease comes back a second later.
    /// If nobody else takes the group, this node still does (off: under
    /// status-write failures and a 0.5 s visibility delay, the simulator's
    /// N = 3 seed 2, the flapping owner took its group back each time:
    /// 69.6 unavailable group-s against 16.3 with the rule).
    pub lease_loss_yields: bool,
    /// The wait for a revoked member's release (heard or silent) runs from
    /// this node's first sight of the member's last heartbeat, when that
    /// heartbeat is at or beyond every revocation bound, as the lease wait
    /// does (off: from the first sight of a quorum of revocations, about
    /// `suspect_after` later, so a dead owner listed up is fenced that much
    /// later).
    ///
    /// It cut N = 10 unavailability from 0.179× to 0.149× classic's (20
    /// seeds, fs delays capped at H/4). It was first merged off: the
    /// uncapped safety sweep (N = 4 and 5, 100 seeds) then had one needless
    /// fence (N = 5, seed 36), through the `lost` fence path, which this
    /// rule does not touch, reached by a changed history: two
    /// just-restarted nodes fenced a node whose record still said `lost`
    /// while a 6.6 s fs delay hid its later release. With
    /// `lost_fence_needs_current_record` that path is closed, and the rule
    /// is on.
    pub release_wait_from_last_heartbeat: bool,
    /// ... but a fencer that does not hear a strict majority of the voters
    /// by their records (an exact half, always at N = 2) counts the wait
    /// from the revocation still (off: from the last heartbeat too; a slow
    /// shared filesystem then gets a healthy node shot at N = 2, where the
    /// tie-breaker fences alone).
    pub exact_half_waits_from_revocation: bool,
    /// A revocation of a node this node hears again (its counter moves
    /// beyond the bound and it acknowledges a record of this node written
    /// after the revocation) is withdrawn and then lifted, instead of
    /// standing until the node releases or restarts.
    pub lift_heard_revocation: bool,
    /// ... but only once every other voter has acknowledged a record of
    /// this node written without it (off: lifted as soon as it is heard
    /// again, which a stale copy of the revocation can turn into a double
    /// owner).
    pub lift_after_round: bool,
    /// Failover without waiting rounds: a new claim request is published
    /// at once, and the best-ranked candidate asks for the claim while the
    /// holder is revoked by a quorum but not void yet, so that grants come
    /// in the step that voids the holder (a latency rule, not a safety
    /// rule: switched off, failover takes about three heartbeat periods
    /// more).
    pub early_claim: bool,
    /// An exact half is no quorum while a voter change is under way (this
    /// node or a voter acknowledged one, or a voter publishes another
    /// version): see `config_unsettled`.
    pub tie_needs_settled_config: bool,
    /// The voter pass proposes only a change that can commit: the proposer
    /// hears a strict majority of the old voters and of the new ones.
    pub propose_only_committable: bool,
    /// The voter pass also demotes a voter listed up whose acknowledgement
    /// of the proposer has not moved for `dead_voter_after` while the
    /// proposer held its lease (too slow, deaf or frozen to vote).
    pub demote_unresponsive: bool,
    /// The voter pass promotes only a learner whose record says it holds
    /// its lease (it completed a lease round trip: its reads and writes
    /// work), so an unresponsive voter just demoted is not promoted back.
    pub promote_only_holders: bool,
    /// A node acknowledges only a change of its current configuration
    /// version, and drops an acknowledgement of an older one (which can
    /// never commit and would block every later change).
    pub ack_current_version_only: bool,
    /// A membership verdict "down" stops counting for a node whose counter
    /// moved after the verdict began and that is not silent: it is heard,
    /// so it is judged by its counter alone, as under heartbeat-file
    /// membership (a liveness rule: switched off, a node the source lists
    /// down stays revoked until the source lists it again, and after a
    /// partition that left no side a majority every group stays down for
    /// the source's detection time; N = 10 seed 13: 5 groups for 5 s).
    pub heard_overrides_down: bool,
    /// The voter pass leaves proposing to a lower voter only while it hears
    /// that voter (off: while the lower voter's last record, however old,
    /// says `holding`; a voter whose monitor died then blocked every
    /// proposal until it was void: N = 10 seed 34 of the simulator, 68.9
    /// unavailable group-s, 6.8 with the rule). No lock-step twin yet.
    pub proposer_must_be_heard: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            durable_revocation: true,
            claims: true,
            pause_needs_fence: true,
            spawn_deadline: true,
            publish_release: true,
            wait_for_all: true,
            lost_needs_fence: true,
            lost_fence_needs_current_record: true,
            vote_until_new_incarnation: true,
            own_restart_ends_vote: true,
            tie_fence: true,
            change_counts_fence_votes: true,
            votes_need_settled_config: true,
            tie_fence_by_voters_only: true,
            fence_by_voters_only: true,
            tie_vote_completes_half: true,
            lift_clears_void: true,
            one_change_per_version: true,
            wait_for_heard_release: true,
            only_holders_fence: true,
            kill_leftovers: true,
            fence_any_lost: true,
            wait_for_silent_release: true,
            must_move_fence_needs_current_record: true,
            blind_fencer_waits: true,
            blind_when_every_peer_read_fails: true,
            lease_loss_yields: true,
            release_wait_from_last_heartbeat: true,
            exact_half_waits_from_revocation: true,
            lift_heard_revocation: true,
            lift_after_round: true,
            early_claim: true,
            tie_needs_settled_config: true,
            propose_only_committable: true,
            demote_unresponsive: true,
            promote_only_holders: true,
            ack_current_version_only: true,
            heard_overrides_down: true,
            proposer_must_be_heard: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_slack_is_two_heartbeats_and_at_least_a_quarter_lease() {
        let p = RankedParams::default();
        assert_eq!(p.record_slack(), Millis(500), "H/4 at the default P = H/16");
        let slow = RankedParams { heartbeat: Millis(400), ..RankedParams::default() };
        assert_eq!(slow.record_slack(), Millis(800), "2P once it exceeds H/4");
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let p = RankedParams::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!((p.lease, p.heartbeat, p.kill_bound), (Millis(2000), Millis(125), Millis(250)));
        assert_eq!(p.takeover_wait(), Millis(2270));
        let bad = RankedParams { lease: Millis(600), ..RankedParams::default() };
        assert!(matches!(bad.validate(), Err(ParamsError::LeaseTooShort { .. })));
        let bad = RankedParams { read_deadline: Millis(600), ..RankedParams::default() };
        assert!(matches!(bad.validate(), Err(ParamsError::ReadDeadline { .. })));
        let partial: RankedParams =
            serde_json::from_str(r#"{"fence_command": true}"#).expect("partial params");
        assert!(partial.fence_command);
        assert_eq!(partial.lease, Millis(2000));
    }
}
