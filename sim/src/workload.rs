//! The groups a scenario runs, as real cltab and hactl texts parsed by the
//! production parsers, plus what the checkers need to know about them:
//! which level each group is wanted at and on which nodes its test passes.
//!
//! The generated workload is the common HA shape: per group a `test` entry
//! (`exit 0`, or `fail-on <nodes>` for a fraction of groups, so the search
//! for an eligible node is exercised) and a respawned server (`run`).

use crate::command::Command;
use crate::config::{ConfigError, SimConfig, Workload};
use crate::processes::Commands;
use clinit_engine::cltab::{Cltab, Mode};
use clinit_engine::hactl::Hactl;
use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A parsed, validated workload.
#[derive(Debug, Clone)]
pub struct Built {
    pub cltab: Arc<Cltab>,
    pub hactl: Arc<Hactl>,
    pub commands: Commands,
    /// Wanted groups (level not `stop`), in name order: (name, level).
    pub wanted: Vec<(String, String)>,
    /// `eligible[g][node]`: group g's test entries pass on node (chance
    /// counts as passing). Index 0 unused.
    pub eligible: Vec<Vec<bool>>,
}

/// Parse a workload's texts with the production parsers; errors name
/// `FILE:LINE` with `cltab_file`/`hactl_file` as FILE (the command line
/// passes the paths the user gave, so a typo is found in its file).
pub fn parse(
    cltab_text: &str,
    cltab_file: &str,
    hactl_text: &str,
    hactl_file: &str,
) -> Result<(Cltab, Hactl, BTreeMap<String, Command>), ConfigError> {
    let cltab =
        Cltab::parse(cltab_text, cltab_file).map_err(|e| ConfigError::Cltab(e.to_string()))?;
    let hactl =
        Hactl::parse(hactl_text, hactl_file).map_err(|e| ConfigError::Hactl(e.to_string()))?;
    let mut commands = BTreeMap::new();
    for e in &cltab.entries {
        let cmd = Command::parse(&e.command).map_err(|source| ConfigError::Command {
            at: format!("{cltab_file}:{}: cltab entry {:?}", e.line, e.tag),
            source,
        })?;
        commands.insert(e.command.clone(), cmd);
    }
    Ok((cltab, hactl, commands))
}

/// Build the workload of `cfg`, drawing generated choices from `rng`.
pub fn build(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Result<Built, ConfigError> {
    let (cltab_text, hactl_text) = match &cfg.workload {
        Workload::Generated { fail_fraction } => {
            generate(cfg.nodes, cfg.groups, *fail_fraction, rng)
        }
        Workload::Custom { cltab, hactl } => (cltab.clone(), hactl.clone()),
    };
    let (cltab, hactl, commands) = parse(&cltab_text, "cltab", &hactl_text, "hactl")?;
    let wanted: Vec<(String, String)> = hactl
        .groups
        .iter()
        .filter(|(_, w)| w.level != "stop")
        .map(|(g, w)| (g.clone(), w.level.clone()))
        .collect();
    let n = cfg.nodes as usize;
    let eligible = wanted
        .iter()
        .map(|(g, _)| {
            let mut row = vec![false; n + 1];
            for (node, slot) in row.iter_mut().enumerate().skip(1) {
                *slot = cltab.has_group(g)
                    && cltab.group_entries(g).filter(|e| e.mode == Mode::Test).all(|e| {
                        commands.get(&e.command).and_then(|c| c.passes_on(node as u32))
                            != Some(false)
                    });
            }
            row
        })
        .collect();
    Ok(Built {
        cltab: Arc::new(cltab),
        hactl: Arc::new(hactl),
        commands: Arc::new(commands),
        wanted,
        eligible,
    })
}

/// Group names `g01`, `g02`, ... (zero-padded so they sort numerically).
pub fn group_name(i: u32, groups: u32) -> String {
    let width = groups.max(1).to_string().len().max(2);
    format!("g{:0width$}", i + 1)
}

fn generate(nodes: u32, groups: u32, fail_fraction: f64, rng: &mut ChaCha8Rng) -> (String, String) {
    let mut cltab = String::new();
    let mut hactl = String::new();
    for i in 0..groups {
        let g = group_name(i, groups);
        let test = if nodes >= 2 && rng.random_bool(fail_fraction.clamp(0.0, 1.0)) {
            // Fail on up to a third of the nodes (never all).
            let k = rng.random_range(1..=(nodes / 3).max(1));
            let mut failing: Vec<u32> =
                sample(rng, nodes as usize, k as usize).into_iter().map(|x| x as u32 + 1).collect();
            failing.sort_unstable();
            let list: Vec<String> = failing.iter().map(u32::to_string).collect();
            format!("fail-on {}", list.join(","))
        } else {
            "exit 0".to_string()
        };
        cltab.push_str(&format!("{g}:{g}t:test:test:{test}\n{g}:{g}r:start:respawn:run\n"));
        hactl.push_str(&format!("{g} start\n"));
    }
    (cltab, hactl)
}
