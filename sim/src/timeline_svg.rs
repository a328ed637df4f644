//! An incident timeline as SVG: one lane per node, a bar where a group ran
//! on it (as the node published it), a tick per event with its text as a
//! tooltip. Written by hand: one chart of rectangles and lines does not
//! justify a plotting crate's dependency tree.

use crate::incident::{clock_text, Incident, Kind};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const LANE: f64 = 70.0;
const PALETTE: [&str; 6] = ["#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"];

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Start => "#2ca02c",
        Kind::Told => "#1f77b4",
        Kind::Group => "#555555",
        Kind::Membership => "#ff7f0e",
        Kind::Stale => "#d62728",
        Kind::Fence => "#8c0000",
        Kind::Quorum => "#9467bd",
        Kind::Conflict => "#e377c2",
        Kind::Stop => "#7f7f7f",
        Kind::End => "#000000",
        Kind::Other => "#bcbd22",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG document of `incident`'s timeline.
pub fn render(incident: &Incident) -> String {
    let nodes: Vec<u32> = {
        let mut n: Vec<u32> = incident.timeline.iter().map(|e| e.node).collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    let lane: BTreeMap<u32, usize> = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let (t0, t1) = (incident.start_wall_ms, incident.end_wall_ms.max(incident.start_wall_ms + 1));
    let plot = WIDTH - LEFT - RIGHT;
    let x = |w: i64| LEFT + (w - t0) as f64 / (t1 - t0) as f64 * plot;
    let height = TOP + LANE * nodes.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let title = if incident.anchored {
        format!("incident from {} UTC", clock_text(t0))
    } else {
        "incident (recordings' own clock)".to_string()
    };
    let _ = writeln!(s, r#"<text x="{LEFT}" y="16" font-size="13">{}</text>"#, escape(&title));
    // Time axis: about ten ticks at a round step.
    let span_s = (t1 - t0) as f64 / 1000.0;
    let step =
        [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]
            .into_iter()
            .find(|st| span_s / st <= 10.0)
            .unwrap_or(7200.0);
    let bottom = TOP + LANE * nodes.len() as f64;
    let mut t = 0.0;
    while t <= span_s + 1e-9 {
        let px = x(t0 + (t * 1000.0) as i64);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">+{t:.1} s</text>"##,
            TOP - 8.0,
            bottom + 16.0
        );
        t += step;
    }
    for (&node, &i) in &lane {
        let y = TOP + LANE * i as f64;
        let _ = writeln!(
            s,
            r##"<text x="8" y="{:.1}">node {node}</text><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/>"##,
            y + LANE / 2.0,
            y + LANE - 4.0,
            WIDTH - RIGHT,
            y + LANE - 4.0
        );
    }
    // Bars: from a group's running entry to its next entry on that node,
    // or to the node's end.
    let mut open: BTreeMap<(u32, String), i64> = BTreeMap::new();
    let mut groups: Vec<String> = Vec::new();
    let mut bars = Vec::new();
    for e in &incident.timeline {
        match (&e.group, e.kind) {
            (Some((g, running)), _) => {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
                if let Some(from) = open.remove(&(e.node, g.clone())) {
                    bars.push((e.node, g.clone(), from, e.at.wall_ms));
                }
                if *running {
                    open.insert((e.node, g.clone()), e.at.wall_ms);
                }
            }
            (None, Kind::End) => {
                let ended: Vec<_> = open.keys().filter(|(n, _)| *n == e.node).cloned().collect();
                for k in ended {
                    if let Some(from) = open.remove(&k) {
                        bars.push((k.0, k.1, from, e.at.wall_ms));
                    }
                }
            }
            _ => {}
        }
    }
    bars.extend(open.into_iter().map(|((n, g), from)| (n, g, from, t1)));
    for (node, g, from, to) in bars {
        let gi = groups.iter().position(|x| *x == g).unwrap_or(0);
        let y = TOP + LANE * lane[&node] as f64 + 8.0 + (gi % 3) as f64 * 14.0;
        let (a, b) = (x(from), x(to));
        let _ = writeln!(
            s,
            r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="12" fill="{}" opacity="0.8"><title>{} runs on node {node}</title></rect><text x="{:.1}" y="{:.1}" fill="white" font-size="10">{}</text>"#,
            (b - a).max(1.0),
            PALETTE[gi % PALETTE.len()],
            escape(&g),
            a + 2.0,
            y + 10.0,
            escape(&g)
        );
    }
    for e in &incident.timeline {
        let px = x(e.at.wall_ms);
        let y = TOP + LANE * lane[&e.node] as f64 + 50.0;
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" y1="{y:.1}" x2="{px:.1}" y2="{:.1}" stroke="{}" stroke-width="2"><title>{} node {}: {}</title></line>"#,
            y + 12.0,
            colour(e.kind),
            escape(&clock_text(e.at.wall_ms)),
            e.node,
            escape(&e.text)
        );
    }
    s.push_str("</svg>\n");
    s
}
