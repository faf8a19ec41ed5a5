//! Charts drawn on the server as SVG: no script, no library, nothing to download. Colours are
//! classes of the stylesheet (`c0`…`c9`), so the CSP needs no inline style.

use std::collections::BTreeMap;

use maud::{Markup, html};

/// Blocked attempts per day, stacked by category: `days` in order, `series` category →
/// count per day (same length as `days`).
pub fn stacked_days(days: &[String], series: &BTreeMap<String, Vec<i64>>, label: &str) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 24.0;
    let totals: Vec<i64> = (0..days.len())
        .map(|d| series.values().map(|v| v[d]).sum())
        .collect();
    let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0));
    let plot_h = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(2.0);
    let y = |v: i64| 8.0 + plot_h - plot_h * v as f64 / top as f64;
    let every = days.len().div_ceil(10).max(1);
    html! {
        div.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
                @for tick in [0, top / 2, top] {
                    line x1=(LEFT) x2=(WIDTH) y1=(y(tick)) y2=(y(tick)) stroke="#d9dee8" {}
                    text x=(LEFT - 6.0) y=(y(tick) + 4.0) text-anchor="end" font-size="11" fill="#5b6478" { (tick) }
                }
                @for (d, day) in days.iter().enumerate() {
                    @let x = LEFT + slot * d as f64 + (slot - bar) / 2.0;
                    @for (i, category, v, base) in stack(series, d) {
                        rect class=(format!("c{}", i % 10)) x=(format!("{x:.1}")) y=(format!("{:.1}", y(base + v)))
                            width=(format!("{bar:.1}")) height=(format!("{:.1}", y(base) - y(base + v))) {
                            title { (day) " · " (category) ": " (v) }
                        }
                    }
                    @if d % every == 0 {
                        text x=(format!("{:.1}", x + bar / 2.0)) y=(HEIGHT - 6.0) text-anchor="middle" font-size="11" fill="#5b6478" {
                            (day.get(5..).unwrap_or(day))
                        }
                    }
                }
            }
            div.legend {
                @for (i, category) in series.keys().enumerate() {
                    span { i class=(format!("c{}", i % 10)) {} (category) }
                }
            }
        }
    }
}

/// Day `d`'s non-zero segments: colour index, category, value, and the sum below it.
fn stack(series: &BTreeMap<String, Vec<i64>>, d: usize) -> Vec<(usize, &str, i64, i64)> {
    let mut base = 0;
    let mut out = Vec::new();
    for (i, (category, values)) in series.iter().enumerate() {
        let v = values[d];
        if v > 0 {
            out.push((i, category.as_str(), v, base));
            base += v;
        }
    }
    out
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `n` (at least 4, so ticks are whole numbers).
fn nice_ceiling(n: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if m * step >= n.max(4) {
                return m * step;
            }
        }
        step *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(120), 200);
        let days = vec!["2026-12-01".to_string(), "2026-12-02".to_string()];
        let series = BTreeMap::from([
            ("adult".to_string(), vec![3, 0]),
            ("malware".to_string(), vec![1, 2]),
        ]);
        let svg = stacked_days(&days, &series, "x").into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("adult: 3"));
    }
}
