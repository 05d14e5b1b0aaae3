//! Bar charts drawn on the server as inline SVG: no chart library, no script, nothing fetched,
//! so the console's content security policy stays as strict as it is. The geometry is computed
//! here; `chart.html` writes it out, escaping every label. Colours come from the stylesheet's
//! classes (a `style` attribute would be refused by the policy). Each chart carries its numbers
//! as a table too, for screen readers and for reading exact values.

use askama::Template;

/// One stacked series: its name in the legend and the stylesheet class that colours it.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
}

/// One bar: its label on the time axis and a count per series, in the series' order.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub label: String,
    pub counts: Vec<u64>,
}

#[derive(Template)]
#[template(path = "chart.html", config = "src/http/console/askama.toml")]
pub struct Chart {
    id: String,
    title: String,
    width: u32,
    height: u32,
    plot_left: u32,
    plot_right: u32,
    bars: Vec<Bar>,
    grid: Vec<Tick>,
    labels: Vec<Tick>,
    legend: Vec<Series>,
    rows: Vec<Bucket>,
    total: u64,
}

struct Bar {
    x: f64,
    width: f64,
    segments: Vec<Segment>,
}

struct Segment {
    y: f64,
    height: f64,
    class: &'static str,
    /// Shown on hover: the bucket, the series and the count.
    title: String,
}

/// A line of the grid (`at` is y) or a label of the time axis (`at` is x).
struct Tick {
    at: f64,
    label: String,
}

/// The drawing's size in its own units; the SVG scales to the width of its container.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;
const LEFT: u32 = 44;
const RIGHT: u32 = 8;
const TOP: u32 = 10;
const BOTTOM: u32 = 24;

impl Chart {
    /// A stacked bar chart `title` of `buckets`, one bar each, coloured by `series`; every
    /// `label_every`-th bucket's label is written under its bar. `id` names the drawing in the
    /// page (it must be unique there).
    pub fn stacked(
        id: &str,
        title: &str,
        series: &[Series],
        buckets: Vec<Bucket>,
        label_every: usize,
    ) -> Chart {
        let sums: Vec<u64> = buckets.iter().map(|b| b.counts.iter().sum()).collect();
        let top = nice_ceiling(sums.iter().copied().max().unwrap_or(0));
        let plot_height = f64::from(HEIGHT - TOP - BOTTOM);
        let plot_width = f64::from(WIDTH - LEFT - RIGHT);
        let slot = plot_width / buckets.len().max(1) as f64;
        // A gap between bars while they are wide enough to afford one.
        let gap = if slot >= 4.0 { slot * 0.2 } else { 0.0 };
        let scale = |count: u64| count as f64 / top as f64 * plot_height;
        let baseline = f64::from(HEIGHT - BOTTOM);
        let bars = buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let mut y = baseline;
                let segments = series
                    .iter()
                    .zip(&bucket.counts)
                    .filter(|(_, count)| **count > 0)
                    .map(|(series, &count)| {
                        let height = scale(count);
                        y -= height;
                        Segment {
                            y,
                            height,
                            class: series.class,
                            title: format!("{}: {} {}", bucket.label, count, series.name),
                        }
                    })
                    .collect();
                Bar {
                    x: f64::from(LEFT) + slot * i as f64 + gap / 2.0,
                    width: slot - gap,
                    segments,
                }
            })
            .collect();
        let grid = [0, top / 2, top]
            .into_iter()
            .map(|value| Tick {
                at: baseline - scale(value),
                label: value.to_string(),
            })
            .collect();
        let labels = buckets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % label_every.max(1) == 0)
            .map(|(i, bucket)| Tick {
                at: f64::from(LEFT) + slot * (i as f64 + 0.5),
                label: bucket.label.clone(),
            })
            .collect();
        Chart {
            id: id.to_owned(),
            title: title.to_owned(),
            width: WIDTH,
            height: HEIGHT,
            plot_left: LEFT,
            plot_right: WIDTH - RIGHT,
            bars,
            grid,
            labels,
            legend: series.to_vec(),
            total: sums.iter().sum(),
            rows: buckets,
        }
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `max`, and at least 2 so that the
/// middle line of the grid is a whole count: the top of the scale.
fn nice_ceiling(max: u64) -> u64 {
    let max = max.max(2);
    let mut power = 1u64;
    loop {
        for step in [1, 2, 5] {
            if step * power >= max {
                return step * power;
            }
        }
        power = power.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: [Series; 2] = [
        Series {
            name: "valid",
            class: "s-valid",
        },
        Series {
            name: "refused",
            class: "s-refused",
        },
    ];

    fn bucket(label: &str, counts: [u64; 2]) -> Bucket {
        Bucket {
            label: label.into(),
            counts: counts.to_vec(),
        }
    }

    #[test]
    fn the_scale_tops_at_a_round_number_with_a_round_half() {
        assert_eq!(nice_ceiling(0), 2);
        assert_eq!(nice_ceiling(1), 2);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(10), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(480), 500);
        assert_eq!(nice_ceiling(501), 1000);
    }

    #[test]
    fn bars_stack_their_series_from_the_baseline_in_proportion() {
        let chart = Chart::stacked(
            "c",
            "Answers",
            &TWO,
            vec![
                bucket("10:00", [6, 4]),
                bucket("10:01", [0, 0]),
                bucket("10:02", [0, 5]),
            ],
            2,
        );
        assert_eq!(chart.total, 15);
        let baseline = f64::from(HEIGHT - BOTTOM);
        let full = f64::from(HEIGHT - TOP - BOTTOM);
        let first = &chart.bars[0].segments;
        // The scale tops at 10: the first bar fills it, valid below refused.
        assert_eq!(first.len(), 2);
        assert!((first[0].y + first[0].height - baseline).abs() < 1e-9);
        assert!((first[0].height - full * 0.6).abs() < 1e-9);
        assert!((first[1].y + first[1].height - first[0].y).abs() < 1e-9);
        assert_eq!(first[1].title, "10:00: 4 refused");
        assert!(chart.bars[1].segments.is_empty());
        assert_eq!(
            chart
                .labels
                .iter()
                .map(|l| l.label.as_str())
                .collect::<Vec<_>>(),
            ["10:00", "10:02"]
        );
        assert_eq!(
            chart
                .grid
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>(),
            ["0", "5", "10"]
        );
    }

    #[test]
    fn labels_are_escaped_and_numbers_are_in_the_table() {
        let chart = Chart::stacked("c", "<b>", &TWO, vec![bucket("<i>", [1, 2])], 1);
        let svg = chart.render().unwrap();
        assert!(!svg.contains("<b>") && !svg.contains("<i>"), "{svg}");
        assert!(
            svg.contains("&#60;i&#62;") || svg.contains("&lt;i&gt;"),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<td data-label="valid">1</td><td data-label="refused">2</td>"#),
            "{svg}"
        );
        assert!(!svg.contains("style="), "{svg}");
    }
}
