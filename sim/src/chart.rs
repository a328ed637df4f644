//! What the simulator's SVG charts share: the error type of a drawing, the
//! palette, and a round axis step. The charts themselves are drawn with the
//! `plotters` crate (SVG backend only) — the project prefers a well-kept
//! library to its own code for everything outside its core.

use plotters::drawing::DrawingAreaErrorKind;

/// Drawing an SVG chart failed. Drawing into a `String` has no I/O to
/// fail, so in practice this is a layout error (e.g. a chart area too
/// small for its labels); the plotters error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing the SVG chart failed: {0}")]
    Draw(#[from] DrawingAreaErrorKind<std::io::Error>),
}

/// Colours of series (groups, policies), the Tableau 10 palette.
pub const PALETTE: [(u8, u8, u8); 6] = [
    (0x4e, 0x79, 0xa7),
    (0x59, 0xa1, 0x4f),
    (0xb0, 0x7a, 0xa1),
    (0x76, 0xb7, 0xb2),
    (0xed, 0xc9, 0x48),
    (0x9c, 0x75, 0x5f),
];

/// A round step (1, 2 or 5 × 10^k) giving at most about `ticks` ticks
/// over `span` (any unit; 1 for an empty or negative span).
pub fn round_step(span: f64, ticks: f64) -> f64 {
    if span.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !span.is_finite() {
        return 1.0;
    }
    let raw = span / ticks.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

#[cfg(test)]
mod tests {
    use super::round_step;

    #[test]
    fn steps_are_round_and_bounded() {
        assert_eq!(round_step(10.0, 10.0), 1.0);
        assert_eq!(round_step(33.0, 10.0), 5.0);
        assert_eq!(round_step(0.7, 10.0), 0.1);
        assert_eq!(round_step(0.0, 10.0), 1.0);
        assert_eq!(round_step(f64::NAN, 10.0), 1.0);
        for span in [0.3, 7.0, 95.0, 1234.0] {
            let s = round_step(span, 10.0);
            assert!(span / s <= 10.0 + 1e-9 && span / s > 2.0, "{span} {s}");
        }
    }
}
