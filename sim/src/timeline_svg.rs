//! An incident timeline as SVG, drawn with `plotters` (SVG backend): one
//! lane per node, a bar where a group ran on it (as the node published it,
//! labelled "G runs on node N"), a tick per event coloured by its kind
//! (a legend names the kinds), a title and a time axis in seconds since
//! the incident's first record.
//!
//! The hand-written version gave every tick its event text as a hover
//! tooltip (`<title>`); plotters' SVG backend cannot emit tooltips, so the
//! texts are in `clinit-sim replay --timeline` (same timeline as text) and
//! the chart shows kinds by colour only.

use crate::chart::{round_step, ChartError, PALETTE};
use crate::incident::{clock_text, Incident, Kind};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// Chart size, px.
const WIDTH: u32 = 1100;
/// Height of one node's lane, px.
const LANE_PX: u32 = 70;

fn colour(kind: Kind) -> RGBColor {
    match kind {
        Kind::Start => RGBColor(0x2c, 0xa0, 0x2c),
        Kind::Told => RGBColor(0x1f, 0x77, 0xb4),
        Kind::Group => RGBColor(0x55, 0x55, 0x55),
        Kind::Membership => RGBColor(0xff, 0x7f, 0x0e),
        Kind::Stale => RGBColor(0xd6, 0x27, 0x28),
        Kind::Fence => RGBColor(0x8c, 0x00, 0x00),
        Kind::Quorum => RGBColor(0x94, 0x67, 0xbd),
        Kind::Conflict => RGBColor(0xe3, 0x77, 0xc2),
        Kind::Stop => RGBColor(0x7f, 0x7f, 0x7f),
        Kind::End => RGBColor(0x00, 0x00, 0x00),
        Kind::Other => RGBColor(0xbc, 0xbd, 0x22),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Start => "start",
        Kind::Told => "told",
        Kind::Group => "group",
        Kind::Membership => "membership",
        Kind::Stale => "stale",
        Kind::Fence => "fence",
        Kind::Quorum => "quorum",
        Kind::Conflict => "conflict",
        Kind::Stop => "stop",
        Kind::End => "end",
        Kind::Other => "other",
    }
}

/// A bar: node, group, from and to (wall ms).
type Bar = (u32, String, i64, i64);

/// The bars of `incident`: from a group's running entry to its next entry
/// on that node, or to the node's end, or to the incident's end; and the
/// groups in order of first appearance.
fn bars(incident: &Incident, t1: i64) -> (Vec<Bar>, Vec<String>) {
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
    // A group that starts running at the very end (after the last stop,
    // or at the node's end) ran for no time: no bar, and no label drawn
    // over the chart's right edge.
    bars.retain(|(_, _, from, to)| to > from);
    (bars, groups)
}

/// The SVG document of `incident`'s timeline (starts with `<svg`).
///
/// Errors: [`ChartError`] if plotters cannot lay the chart out.
pub fn render(incident: &Incident) -> Result<String, ChartError> {
    let nodes: Vec<u32> = {
        let mut n: Vec<u32> = incident.timeline.iter().map(|e| e.node).collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    let lanes = nodes.len().max(1) as f64;
    // Lane i (of the i-th smallest node) spans y ∈ [lanes-i-1, lanes-i]: the
    // first node on top.
    let lane: BTreeMap<u32, f64> =
        nodes.iter().enumerate().map(|(i, &n)| (n, lanes - i as f64 - 1.0)).collect();
    let (t0, t1) = (incident.start_wall_ms, incident.end_wall_ms.max(incident.start_wall_ms + 1));
    let span_s = (t1 - t0) as f64 / 1000.0;
    let x = |w: i64| (w - t0) as f64 / 1000.0;
    let step = round_step(span_s, 10.0);
    let x_ticks = (span_s / step).floor() as usize + 1;
    let title = if incident.anchored {
        format!("incident from {} UTC", clock_text(t0))
    } else {
        "incident (recordings' own clock)".to_string()
    };
    let (bars, groups) = bars(incident, t1);
    let height = 110 + LANE_PX * nodes.len().max(1) as u32;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..span_s, 0.0..lanes)?;
        // The lanes are named by hand: plotters picks round y ticks itself,
        // and a lane's name belongs at its middle.
        chart
            .configure_mesh()
            .x_labels(x_ticks)
            .x_label_formatter(&|t| format!("+{t:.1} s"))
            .y_labels(0)
            .x_desc("time since the first record, s")
            .light_line_style(WHITE)
            .draw()?;
        for (node, y) in &lane {
            let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
            root.draw(&Text::new(
                format!("node {node}"),
                (px - 64, py - 6),
                ("sans-serif", 12).into_font(),
            ))?;
        }
        // Lane separators.
        chart.draw_series((1..nodes.len()).map(|i| {
            PathElement::new(vec![(0.0, i as f64), (span_s, i as f64)], RGBColor(0x99, 0x99, 0x99))
        }))?;
        for (node, g, from, to) in &bars {
            let gi = groups.iter().position(|x| x == g).unwrap_or(0);
            let top = lane[node] + 0.9 - (gi % 3) as f64 * 0.2;
            let (a, b) = (x(*from), x(*to));
            let fill = PALETTE[gi % PALETTE.len()];
            let fill = RGBColor(fill.0, fill.1, fill.2).mix(0.8).filled();
            chart
                .draw_series(std::iter::once(Rectangle::new([(a, top), (b, top - 0.17)], fill)))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{g} runs on node {node}"),
                (a, top - 0.02),
                ("sans-serif", 10).into_font().color(&WHITE),
            )))?;
        }
        // Event ticks in the lane's lower part, one series per kind for the legend.
        let mut kinds: Vec<Kind> = incident.timeline.iter().map(|e| e.kind).collect();
        kinds.sort_by_key(|k| kind_name(*k));
        kinds.dedup();
        for kind in kinds {
            let c = colour(kind);
            chart
                .draw_series(incident.timeline.iter().filter(|e| e.kind == kind).map(|e| {
                    let (px, y) = (x(e.at.wall_ms), lane[&e.node] + 0.05);
                    PathElement::new(vec![(px, y), (px, y + 0.2)], c.stroke_width(2))
                }))?
                .label(kind_name(kind))
                .legend(move |(lx, ly)| {
                    PathElement::new(vec![(lx, ly - 5), (lx, ly + 5)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0x99, 0x99, 0x99))
            .label_font(("sans-serif", 10))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Entry, Stamp};

    fn entry(wall_ms: i64, group: Option<(&str, bool)>, kind: Kind) -> Entry {
        Entry {
            at: Stamp { at_ms: wall_ms as u64, wall_ms },
            node: 2,
            kind,
            group: group.map(|(g, r)| (g.to_string(), r)),
            text: String::new(),
        }
    }

    /// Issue 8: a group that the node published as running at the
    /// incident's last instant drew a zero-width bar with its white label
    /// at the chart's right edge ("g1 runs on node 2").
    #[test]
    fn a_group_running_for_no_time_draws_no_bar() {
        let timeline = vec![
            entry(0, Some(("g1", true)), Kind::Group),
            entry(5_000, Some(("g1", false)), Kind::Group),
            entry(9_000, Some(("g1", true)), Kind::Group),
        ];
        let incident = Incident {
            recordings: Vec::new(),
            anchored: false,
            start_wall_ms: 0,
            end_wall_ms: 9_000,
            timeline,
        };
        let (bars, groups) = bars(&incident, 9_000);
        assert_eq!(bars, vec![(2, "g1".to_string(), 0, 5_000)]);
        assert_eq!(groups, vec!["g1".to_string()]);
        let svg = render(&incident).expect("draws");
        assert_eq!(svg.matches("g1 runs on node 2").count(), 1, "{svg}");
    }
}
