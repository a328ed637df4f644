//! The cluster layer's backends on real files under a temp dir: openMosix
//! membership (bit 2), heartbeat freshness, `mosctl whois` parsing, clstat
//! reading, and hactl/cltab replication (copies keep the source's mtime; an
//! unparsable candidate never spreads).

use clinit_backends::heartbeat::{self, HeartbeatMembership};
use clinit_backends::membership::Membership;
use clinit_backends::openmosix::{parse_whois, whois, HpcMembership, WhoisError};
use clinit_backends::shared::{read_clstat, FsStore, NodePaths, Replica, SharedFile, SharedStore};
use clinit_engine::cltab::Cltab;
use clinit_engine::hactl::Hactl;
use clinit_engine::monitor::NodeStatus;
use clinit_engine::Millis;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn write_with_mtime(path: &Path, text: &str, mtime: SystemTime) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("mkdir");
    }
    fs::write(path, text).expect("write");
    let f = fs::File::options().write(true).open(path).expect("open");
    f.set_modified(mtime).expect("set mtime");
}

fn store(dir: &Path, nodes: &[u32]) -> FsStore {
    let paths = NodePaths::new(dir.join("mfs"), "var/mosix-ha");
    for &n in nodes {
        fs::create_dir_all(paths.node_dir(n)).expect("mkdir node dir");
    }
    FsStore::new(paths)
}

#[test]
fn openmosix_membership_uses_bit_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = dir.path().join("nodes");
    let status = |name: &str, text: &str| {
        fs::create_dir_all(nodes.join(name)).expect("mkdir");
        fs::write(nodes.join(name).join("status"), text).expect("write");
    };
    status("1", "3\n");
    status("2", "1\n"); // configured, not up
    status("5", "2\n");
    status("7", "garbage\n");
    status("10", "6\nsecond line ignored\n");
    status("x3", "3\n"); // not a node number
    fs::create_dir_all(nodes.join("4").join("status")).expect("mkdir"); // unreadable: a directory
    fs::create_dir_all(nodes.join("6")).expect("mkdir"); // no status file
    let m = HpcMembership::new(dir.path());
    assert_eq!(m.members().expect("members"), vec![1, 5, 10]);

    let missing = HpcMembership::new(dir.path().join("no-such-hpc"));
    let err = missing.members().expect_err("no nodes dir");
    assert!(err.to_string().contains("no-such-hpc"), "{err}");
}

#[test]
fn heartbeat_membership_is_freshness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(store(dir.path(), &[1, 2, 3, 4]));
    let now = SystemTime::now();
    heartbeat::beat(&*store, 1).expect("beat");
    let hb = |n: u32| store.paths.file(n, SharedFile::Heartbeat);
    write_with_mtime(&hb(2), "x", now - Duration::from_secs(100));
    write_with_mtime(&hb(3), "x", now - Duration::from_secs(5));
    // node 4 has a directory but no heartbeat; "junk" is not a node
    fs::create_dir_all(dir.path().join("mfs").join("junk").join("var/mosix-ha")).expect("mkdir");
    let m = HeartbeatMembership::new(store.clone(), Millis::from_secs(60));
    assert_eq!(m.members_at(now).expect("members"), vec![1, 3]);
    let strict = HeartbeatMembership::new(store.clone(), Millis::from_secs(2));
    assert_eq!(strict.members_at(now).expect("members"), vec![1]);
    // A clean exit leaves membership at once.
    heartbeat::remove(&*store, 1).expect("remove");
    heartbeat::remove(&*store, 1).expect("removing twice is fine");
    assert_eq!(m.members_at(now).expect("members"), vec![3]);
    // No shared directory at all: an error, not an empty cluster.
    let gone = FsStore::new(NodePaths::new(dir.path().join("nowhere"), "var/mosix-ha"));
    let m = HeartbeatMembership::new(Arc::new(gone), Millis::from_secs(60));
    assert!(m.members().is_err());
}

#[test]
fn whois_output_is_parsed_and_checked() {
    assert_eq!(parse_whois("mosctl whois", "This is MOSIX #32\n").ok(), Some(32));
    assert!(matches!(parse_whois("w", "This is MOSIX #0"), Err(WhoisError::Zero { .. })));
    assert!(matches!(parse_whois("w", "MOSIX is not running"), Err(WhoisError::NoDigits { .. })));
    let limit = Duration::from_secs(10);
    assert_eq!(whois("echo 'This is MOSIX #7'", limit).ok(), Some(7));
    assert!(matches!(whois("echo 'node #0'", limit), Err(WhoisError::Zero { .. })));
    let err = whois("echo oops >&2; exit 3", limit).expect_err("failing command");
    assert!(err.to_string().contains("--node"), "{err}");
    assert!(matches!(
        whois("sleep 30", Duration::from_millis(200)),
        Err(WhoisError::Timeout { .. })
    ));
}

#[test]
fn clstat_missing_unreadable_and_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path(), &[1, 2, 3]);
    let now = SystemTime::now();
    assert_eq!(read_clstat(&store, 1, now), NodeStatus::Missing);
    let clstat = |n| store.paths.file(n, SharedFile::Clstat);
    write_with_mtime(
        &clstat(2),
        "Cluster::Init::Group web start DONE\n",
        now - Duration::from_secs(90),
    );
    match read_clstat(&store, 2, now) {
        NodeStatus::Read { clstat, age } => {
            assert_eq!(clstat.get("web").map(|s| s.level.as_str()), Some("start"));
            assert!(age >= Millis::from_secs(89) && age <= Millis::from_secs(91), "{age}");
        }
        other => panic!("{other:?}"),
    }
    fs::write(clstat(3), "Cluster::Init::Group web start DONE\nhalf a li").expect("write");
    match read_clstat(&store, 3, now) {
        NodeStatus::Unreadable { reason } => assert!(reason.contains("clstat:2"), "{reason}"),
        other => panic!("a torn clstat is unknown, not empty: {other:?}"),
    }
    fs::create_dir_all(clstat(1)).expect("a directory where the file should be");
    assert!(matches!(read_clstat(&store, 1, now), NodeStatus::Unreadable { .. }));
}

#[test]
fn replication_copies_the_newest_good_copy_with_its_mtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path(), &[1, 2, 3]);
    let hactl = |n| store.paths.file(n, SharedFile::Hactl);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    write_with_mtime(&hactl(1), "web start\ndb start\n", t0 + Duration::from_secs(10));
    write_with_mtime(&hactl(2), "web stop\n", t0);

    // Node 2 adopts node 1's newer copy: same bytes, same mtime.
    let mut replica: Replica<Hactl> = Replica::new();
    let settled = replica.replicate(&store, 2, &[1, 2, 3]);
    assert_eq!(settled.adopted_from, Some(1));
    assert!(settled.changed);
    let current = settled.current.expect("a hactl");
    assert_eq!(current.get("db").map(|w| w.level.as_str()), Some("start"));
    assert_eq!(fs::read(hactl(2)).expect("read"), fs::read(hactl(1)).expect("read"));
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).expect("mtime");
    assert_eq!(mtime(&hactl(2)), t0 + Duration::from_secs(10));
    // Nothing more to do.
    let again = replica.replicate(&store, 2, &[1, 2, 3]);
    assert_eq!((again.adopted_from, again.changed), (None, false));

    // A newer copy on node 3 that does not parse is not adopted.
    write_with_mtime(&hactl(3), "web start\ndb\n", t0 + Duration::from_secs(20));
    let settled = replica.replicate(&store, 2, &[1, 2, 3]);
    assert_eq!((settled.adopted_from, settled.changed), (None, false));
    assert_eq!(fs::read_to_string(hactl(2)).expect("read"), "web start\ndb start\n");

    // A broken edit of my own copy: keep running on the last good parse,
    // and an older good copy elsewhere does not overwrite the edit.
    write_with_mtime(&hactl(2), "web\n", t0 + Duration::from_secs(30));
    let settled = replica.replicate(&store, 2, &[1, 2, 3]);
    assert_eq!(settled.adopted_from, None);
    assert_eq!(settled.current.as_deref(), Some(&*current));
    assert_eq!(fs::read_to_string(hactl(2)).expect("read"), "web\n");

    // A node that has none yet gets the newest good one (node 1's, t0+10,
    // since node 3's newer one is broken and node 2's newest is broken too).
    let mut fresh: Replica<Hactl> = Replica::new();
    fs::create_dir_all(store.paths.node_dir(4)).expect("mkdir");
    let settled = fresh.replicate(&store, 4, &[1, 2, 3, 4]);
    assert_eq!(settled.adopted_from, Some(1));
    assert_eq!(fs::read_to_string(hactl(4)).expect("read"), "web start\ndb start\n");
}

#[test]
fn cltab_replication_refuses_a_broken_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path(), &[1, 2]);
    let cltab = |n| store.paths.file(n, SharedFile::Cltab);
    let t0 = SystemTime::now() - Duration::from_secs(100);
    write_with_mtime(&cltab(1), "web:w1:start:respawn:sleep 100\n", t0);
    let mut replica: Replica<Cltab> = Replica::new();
    let settled = replica.replicate(&store, 2, &[1, 2]);
    assert_eq!(settled.adopted_from, Some(1));
    assert!(settled.current.is_some_and(|t| t.has_group("web")));
    // Duplicate tag on node 1, newer: not adopted; node 2 keeps its copy.
    write_with_mtime(
        &cltab(1),
        "web:w1:start:respawn:sleep 100\nweb:w1:stop:wait:true\n",
        t0 + Duration::from_secs(50),
    );
    let settled = replica.replicate(&store, 2, &[1, 2]);
    assert_eq!((settled.adopted_from, settled.changed), (None, false));
    assert_eq!(fs::read_to_string(cltab(2)).expect("read"), "web:w1:start:respawn:sleep 100\n");
    assert_eq!(store.stat(2, SharedFile::Cltab).expect("stat").map(|s| s.mtime), Some(t0));
}
