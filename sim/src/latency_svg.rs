//! Failover latency distributions as SVG, drawn with `plotters` (SVG
//! backend): a histogram (failovers per bin) above the empirical CDF, one
//! colour per series (a cluster size, a policy, a sweep's grid point), with
//! each series' p50, p90 and p99 marked as vertical lines on both panels
//! and written in the legend. The percentiles are
//! [`crate::metrics::percentile`], the ones the text summaries print.

use crate::chart::{round_step, ChartError, PALETTE};
use crate::metrics::percentile;
use plotters::prelude::*;

/// One distribution: its legend label and its failover latencies, s.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub latencies_s: Vec<f64>,
}

/// Chart size, px.
const SIZE: (u32, u32) = (1000, 700);
/// The marked percentiles.
const MARKS: [f64; 3] = [50.0, 90.0, 99.0];

fn colour(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    RGBColor(c.0, c.1, c.2)
}

/// The legend text of `s`: label, count and the marked percentiles.
fn legend(s: &Series) -> String {
    let marks: Vec<String> = MARKS
        .iter()
        .map(|&p| match percentile(&s.latencies_s, p) {
            Some(v) => format!("p{p:.0} {v:.1} s"),
            None => format!("p{p:.0} -"),
        })
        .collect();
    format!("{} ({} failovers): {}", s.label, s.latencies_s.len(), marks.join(", "))
}

/// The SVG document (starts with `<svg`) of the distributions of `series`
/// under `title`. A series without failovers is listed in the legend only.
///
/// Errors: [`ChartError`] if plotters cannot lay the chart out.
pub fn render(title: &str, series: &[Series]) -> Result<String, ChartError> {
    let max = series
        .iter()
        .flat_map(|s| s.latencies_s.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let x_max = if max > 0.0 { max * 1.05 } else { 1.0 };
    // About 40 bins of a round width, shared by every series.
    let bin = round_step(x_max, 40.0);
    let bins = (x_max / bin).ceil().max(1.0) as usize;
    let counts: Vec<Vec<u64>> = series
        .iter()
        .map(|s| {
            let mut c = vec![0u64; bins];
            for &v in s.latencies_s.iter().filter(|v| v.is_finite() && **v >= 0.0) {
                c[((v / bin) as usize).min(bins - 1)] += 1;
            }
            c
        })
        .collect();
    let y_max = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64 * 1.1;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 16))?;
        let (upper, lower) = root.split_vertically(SIZE.1 / 2 - 10);

        let mut hist = ChartBuilder::on(&upper)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        hist.configure_mesh()
            .x_desc("failover latency, s")
            .y_desc("count")
            .light_line_style(WHITE)
            .draw()?;
        for (i, c) in counts.iter().enumerate() {
            let fill = colour(i).mix(if series.len() > 1 { 0.45 } else { 0.8 }).filled();
            hist.draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(b, n)| {
                let a = b as f64 * bin;
                Rectangle::new([(a, 0.0), (a + bin, *n as f64)], fill)
            }))?;
        }

        let mut cdf = ChartBuilder::on(&lower)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, 0.0..1.0)?;
        cdf.configure_mesh().x_desc("failover latency, s").y_desc("cumulative fraction").draw()?;
        for (i, s) in series.iter().enumerate() {
            let c = colour(i);
            let mut sorted: Vec<f64> =
                s.latencies_s.iter().copied().filter(|v| v.is_finite()).collect();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len() as f64;
            // The empirical CDF as a step line.
            let mut steps = vec![(0.0, 0.0)];
            for (k, &v) in sorted.iter().enumerate() {
                steps.push((v, k as f64 / n));
                steps.push((v, (k + 1) as f64 / n));
            }
            if let Some(&last) = sorted.last() {
                steps.push((x_max.max(last), 1.0));
            }
            cdf.draw_series(LineSeries::new(steps, c.stroke_width(2)))?
                .label(legend(s))
                .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 14, y + 4)], c.filled()));
            for &p in &MARKS {
                let Some(v) = percentile(&s.latencies_s, p) else { continue };
                let mark = c.stroke_width(1);
                hist.draw_series(std::iter::once(PathElement::new(
                    vec![(v, 0.0), (v, y_max)],
                    mark,
                )))?;
                cdf.draw_series(std::iter::once(PathElement::new(vec![(v, 0.0), (v, 1.0)], mark)))?;
                // Labels stagger by series so that several stay readable.
                let y = 0.04 + 0.07 * (i % 4) as f64;
                cdf.draw_series(std::iter::once(Text::new(
                    format!("p{p:.0} {v:.1} s"),
                    (v, 1.0 - y),
                    ("sans-serif", 11).into_font().color(&c),
                )))?;
            }
        }
        cdf.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(0x99, 0x99, 0x99))
            .label_font(("sans-serif", 12))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::{render, Series};

    #[test]
    fn draws_histogram_cdf_and_percentiles() {
        let a = Series {
            label: "N=3".into(),
            latencies_s: (0..100).map(|i| 10.0 + i as f64 * 0.1).collect(),
        };
        let b = Series { label: "N=10".into(), latencies_s: vec![] };
        let svg = render("failover latency", &[a, b]).expect("draws");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        // p50 of 10.0..=19.9 by the nearest rank is 14.9 (metrics::percentile).
        for text in [
            "failover latency",
            "count",
            "cumulative fraction",
            "p90",
            "p99",
            "N=3 (100 failovers): p50 14.9 s, p90 18.9 s, p99 19.8 s",
            "N=10 (0 failovers): p50 -",
        ] {
            assert!(svg.contains(text), "no {text:?} in\n{svg}");
        }
        assert!(svg.contains("<polyline"), "no CDF line:\n{svg}");
        assert!(svg.matches("<rect").count() > 10, "no histogram bars:\n{svg}");
    }

    #[test]
    fn no_failovers_still_draws() {
        let svg = render("none", &[]).expect("draws");
        assert!(svg.starts_with("<svg") && svg.contains("none"));
    }
}
