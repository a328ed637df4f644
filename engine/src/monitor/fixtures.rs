//! The original test suite's `t/master` fixture, as data (tests only).

use crate::hactl::Hactl;
use crate::hastat::Hastat;
use crate::status::ClStat;

/// Node 1's clstat (mtime 1981 in the original fixture).
pub fn clstat1() -> ClStat {
    ClStat::parse(
        "Cluster::Init::Group foo start DONE\n\
         Cluster::Init::Group bar start DONE\n\
         Cluster::Init::Group del start DONE\n\
         Cluster::Init::Group pln plan DONE\n\
         Cluster::Init::Group bad test FAILED\n",
    )
}

/// Node 2's clstat (mtime 1982).
pub fn clstat2() -> ClStat {
    ClStat::parse(
        "Cluster::Init::Group foo stop DONE\n\
         Cluster::Init::Group bar stop RUNNING\n\
         Cluster::Init::Group baz test PASSED\n",
    )
}

/// `hastat(1,2,3)` on the fixture (node 3 has no clstat).
pub fn hastat() -> Hastat {
    Hastat::build([(1, &clstat1()), (2, &clstat2())])
}

/// Node 1's hactl (the newest, replicated everywhere).
pub fn hactl() -> Hactl {
    let text = "foo start\nbar 2\nbaz start\npln start\nbad start\nnew start\n";
    Hactl::parse(text, "t/master/mfs1/1/var/mosix-ha/hactl").expect("fixture hactl parses")
}
