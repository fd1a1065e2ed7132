//! The report's figures as SVG text: no script, no external reference, every data mark
//! carrying its number in a `data-*` attribute and a tooltip (`<title>`).
//!
//! Each figure is an `<svg class="figure" data-figure="NAME">`; its data marks have class
//! `bar` (histogram bars, one per bar of the JSON) or `pt` (scatter points), so a test or a
//! reader can match them to the `--json` output.

use std::fmt::Write;

use super::stats::Bar;
use super::{Entry, Report};

const W: f64 = 640.0;
const H: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 48.0;
/// Colours of the series, in order.
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// Escapes text for HTML and XML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// A number for people: 4 significant digits, exponent form when far from 1.
pub fn num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.3e}")
    }
}

/// A value-to-pixel map on one axis.
#[derive(Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    px0: f64,
    px1: f64,
}

impl Scale {
    fn new(lo: f64, hi: f64, log: bool, px0: f64, px1: f64) -> Scale {
        let (mut lo, mut hi) = if log {
            (
                lo.max(f64::MIN_POSITIVE).log10(),
                hi.max(f64::MIN_POSITIVE).log10(),
            )
        } else {
            (lo, hi)
        };
        if hi.is_nan() || lo.is_nan() || hi <= lo {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            lo -= pad;
            hi += pad;
        }
        Scale {
            lo,
            hi,
            log,
            px0,
            px1,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let v = if self.log {
            v.max(f64::MIN_POSITIVE).log10()
        } else {
            v
        };
        self.px0 + (v - self.lo) / (self.hi - self.lo) * (self.px1 - self.px0)
    }

    /// About five tick values inside the range.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            // Over a few decades, 1-2-5 steps; else every decade or so.
            let few = self.hi - self.lo <= 3.5;
            let (a, b, mantissas): (i32, i32, &[f64]) = if few {
                (
                    self.lo.floor() as i32,
                    self.hi.ceil() as i32,
                    &[1.0, 2.0, 5.0],
                )
            } else {
                (self.lo.ceil() as i32, self.hi.floor() as i32, &[1.0])
            };
            let step = if few { 1 } else { ((b - a) / 6 + 1).max(1) };
            return (a..=b)
                .step_by(step as usize)
                .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|v| {
                    let l = v.log10();
                    l >= self.lo - 1e-9 && l <= self.hi + 1e-9
                })
                .collect();
        }
        let span = self.hi - self.lo;
        let raw = span / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| span / s <= 6.0)
            .unwrap_or(10.0 * mag);
        let first = (self.lo / step).ceil() as i64;
        let last = (self.hi / step).floor() as i64;
        (first..=last).map(|i| i as f64 * step).collect()
    }
}

/// An SVG being written.
struct Svg {
    s: String,
}

impl Svg {
    fn open(name: &str, title: &str, standalone: bool, w: f64, h: f64) -> Svg {
        let ns = if standalone {
            " xmlns=\"http://www.w3.org/2000/svg\""
        } else {
            ""
        };
        let mut s = format!(
            "<svg{ns} class=\"figure\" data-figure=\"{name}\" viewBox=\"0 0 {w} {h}\" \
             width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{t}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n<title>{t}</title>\n\
             <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\n",
            t = esc(title)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{}</text>",
            w / 2.0,
            esc(title)
        );
        Svg { s }
    }

    fn close(mut self) -> String {
        self.s.push_str("</svg>\n");
        self.s
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, t: &str) {
        let _ = writeln!(
            self.s,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{}</text>",
            esc(t)
        );
    }

    /// The frame, ticks and labels of a plot area.
    fn axes(&mut self, x: &Scale, y: &Scale, xlabel: &str, ylabel: &str, xticks: bool) {
        let (x0, x1, y0, y1) = (x.px0, x.px1, y.px0, y.px1);
        let _ = writeln!(
            self.s,
            "<rect x=\"{x0:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888\"/>",
            x1 - x0,
            y0 - y1
        );
        for t in y.ticks() {
            let py = y.at(t);
            let _ = writeln!(
                self.s,
                "<line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>"
            );
            self.text(x0 - 4.0, py + 4.0, "end", &num(t));
        }
        if xticks {
            for t in x.ticks() {
                let px = x.at(t);
                let _ = writeln!(
                    self.s,
                    "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{y0:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>",
                    y0 + 4.0
                );
                self.text(px, y0 + 16.0, "middle", &num(t));
            }
        }
        self.text((x0 + x1) / 2.0, y0 + 34.0, "middle", xlabel);
        let _ = writeln!(
            self.s,
            "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            (y0 + y1) / 2.0,
            esc(ylabel)
        );
    }
}

fn plot_scales(xs: (f64, f64, bool), ys: (f64, f64, bool), w: f64, h: f64) -> (Scale, Scale) {
    (
        Scale::new(xs.0, xs.1, xs.2, LEFT, w - RIGHT),
        Scale::new(ys.0, ys.1, ys.2, h - BOTTOM, TOP),
    )
}

/// A histogram whose bars are drawn side by side, equal widths (each bar is the same span
/// on a log scale), labelled with some of their edges.
fn histogram(name: &str, title: &str, xlabel: &str, bars: &[Bar], color: &str, sa: bool) -> String {
    let mut g = Svg::open(name, title, sa, W, H);
    let max = bars.iter().map(|b| b.count).max().unwrap_or(0) as f64;
    let n = bars.len().max(1) as f64;
    let (x, y) = plot_scales((0.0, n, false), (0.0, max.max(1.0) * 1.05, false), W, H);
    g.axes(&x, &y, xlabel, "rows", false);
    let bw = (x.px1 - x.px0) / n;
    for (i, b) in bars.iter().enumerate() {
        let top = y.at(b.count as f64);
        let _ = writeln!(
            g.s,
            "<rect class=\"bar\" data-lo=\"{}\" data-hi=\"{}\" data-count=\"{}\" x=\"{:.2}\" y=\"{top:.2}\" \
             width=\"{:.2}\" height=\"{:.2}\" fill=\"{color}\"><title>[{}, {}): {} rows</title></rect>",
            b.lo,
            b.hi,
            b.count,
            x.px0 + i as f64 * bw + 0.5,
            (bw - 1.0).max(0.5),
            y.px0 - top,
            num(b.lo),
            num(b.hi),
            b.count
        );
    }
    // Edge labels: the first, some in between, the last.
    let every = bars.len().div_ceil(6).max(1);
    for (i, b) in bars.iter().enumerate() {
        // Not one that would run into the last edge's label.
        if i % every == 0 && (bars.len() - i) * 2 > every {
            g.text(x.px0 + i as f64 * bw, y.px0 + 16.0, "middle", &num(b.lo));
        }
    }
    if let Some(b) = bars.last() {
        g.text(x.px1, y.px0 + 16.0, "middle", &num(b.hi));
    }
    g.close()
}

/// The histogram of `1 − cosine`.
pub fn cosine(e: &Entry, color: &str, sa: bool) -> String {
    histogram(
        "cosine",
        &format!("{}: 1 − cosine(original, reconstruction)", e.label),
        "1 − cosine (log-spaced bars; 0: identical)",
        &e.cosine_hist,
        color,
        sa,
    )
}

/// The histogram of the error norm.
pub fn error_norm(e: &Entry, color: &str, sa: bool) -> String {
    histogram(
        "error_norm",
        &format!(
            "{}: per-row error norm ‖original − reconstruction‖",
            e.label
        ),
        "error norm (log-spaced bars)",
        &e.error_norm_hist,
        color,
        sa,
    )
}

/// RMS error per dimension, one bar each; the worst dimensions labelled.
pub fn per_dim(e: &Entry, color: &str, sa: bool) -> String {
    let mut g = Svg::open(
        "per_dim",
        &format!("{}: RMS error per dimension", e.label),
        sa,
        W,
        H,
    );
    let v = &e.per_dim.rms;
    let max = v.iter().copied().fold(0f64, f64::max);
    let n = v.len().max(1) as f64;
    let (x, y) = plot_scales(
        (0.0, n, false),
        (0.0, if max > 0.0 { max * 1.1 } else { 1.0 }, false),
        W,
        H,
    );
    g.axes(&x, &y, "dimension", "RMS error", true);
    let bw = (x.px1 - x.px0) / n;
    for (i, &r) in v.iter().enumerate() {
        let top = y.at(r);
        let _ = writeln!(
            g.s,
            "<rect class=\"bar\" data-dim=\"{i}\" data-value=\"{r}\" x=\"{:.2}\" y=\"{top:.2}\" width=\"{:.2}\" \
             height=\"{:.2}\" fill=\"{color}\"><title>dimension {i}: RMS {}, mean |error| {}</title></rect>",
            x.px0 + i as f64 * bw,
            bw.max(0.3),
            y.px0 - top,
            num(r),
            num(e.per_dim.mean_abs[i])
        );
    }
    for &i in e.per_dim.worst.iter().take(3) {
        g.text(
            x.px0 + (i as f64 + 0.5) * bw,
            y.at(v[i]) - 4.0,
            "middle",
            &format!("{i}"),
        );
    }
    g.close()
}

/// The originals beside their reconstructions on the originals' two principal axes.
pub fn pca(e: &Entry, sa: bool) -> String {
    let w = 2.0 * W - 80.0;
    let mut g = Svg::open(
        "pca",
        &format!(
            "{}: PCA of {} sampled rows (axes from the originals: {:.1}% and {:.1}% of the variance)",
            e.label,
            e.pca.rows.len(),
            100.0 * e.pca.explained[0],
            100.0 * e.pca.explained[1]
        ),
        sa,
        w,
        H + 20.0,
    );
    let all = e.pca.original.iter().chain(&e.pca.reconstruction);
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in all {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
    }
    // A margin, so that no point sits on the frame.
    let (px, py) = (0.04 * (x1 - x0), 0.04 * (y1 - y0));
    (x0, x1, y0, y1) = (x0 - px, x1 + px, y0 - py, y1 + py);
    let half = w / 2.0;
    for (panel, (pts, class, color, what)) in [
        (&e.pca.original, "orig", PALETTE[0], "originals"),
        (
            &e.pca.reconstruction,
            "recon",
            PALETTE[1],
            "reconstructions",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let off = panel as f64 * half;
        let x = Scale::new(x0, x1, false, off + LEFT, off + half - RIGHT);
        let y = Scale::new(y0, y1, false, H + 20.0 - BOTTOM, TOP + 16.0);
        g.axes(&x, &y, "PC 1", "PC 2", true);
        g.text((x.px0 + x.px1) / 2.0, TOP + 10.0, "middle", what);
        for (p, row) in pts.iter().zip(&e.pca.rows) {
            let _ = writeln!(
                g.s,
                "<circle class=\"pt {class}\" data-row=\"{row}\" data-x=\"{}\" data-y=\"{}\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"2.2\" \
                 fill=\"{color}\" fill-opacity=\"0.6\"><title>row {row}: ({}, {})</title></circle>",
                p[0],
                p[1],
                x.at(p[0]),
                y.at(p[1]),
                num(p[0]),
                num(p[1])
            );
        }
    }
    g.close()
}

/// For each of a few queries, the compressed rank of each of its true top 10.
pub fn movement(e: &Entry, sa: bool) -> String {
    let mut g = Svg::open(
        "movement",
        &format!(
            "{}: where each query's true top 10 landed in the compressed ranking",
            e.label
        ),
        sa,
        W,
        H,
    );
    let depth = e
        .movement
        .iter()
        .map(|m| m.depth)
        .max()
        .unwrap_or(10)
        .max(10);
    let miss = depth as f64 + 1.0;
    let (x, y) = plot_scales((0.5, 10.5, false), (0.8, miss * 1.3, true), W, H);
    g.axes(&x, &y, "true rank", "rank in the compressed search", true);
    // Where a neighbour that did not move sits: compressed rank = true rank.
    let diagonal: Vec<String> = (1..=10)
        .map(|t| format!("{:.1},{:.1}", x.at(t as f64), y.at(t as f64)))
        .collect();
    let _ = writeln!(
        g.s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#999\" stroke-dasharray=\"3 3\"/>",
        diagonal.join(" ")
    );
    g.text(
        x.px1 - 4.0,
        y.at(miss) - 4.0,
        "end",
        &format!("not in the first {depth}"),
    );
    let _ = writeln!(
        g.s,
        "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-dasharray=\"2 4\"/>",
        x.px0,
        x.px1,
        y.at(miss),
        y.at(miss)
    );
    let nq = e.movement.len().max(1) as f64;
    for (qi, m) in e.movement.iter().enumerate() {
        let color = PALETTE[qi % PALETTE.len()];
        // Queries side by side within each true rank, so that equal ranks stay visible.
        let dx = (qi as f64 - (nq - 1.0) / 2.0) * 0.12;
        let mut path = String::new();
        for (ti, r) in m.ranks.iter().enumerate() {
            let px = x.at(ti as f64 + 1.0 + dx);
            let py = y.at(r.map_or(miss, |r| r as f64));
            let _ = write!(path, "{}{px:.1},{py:.1}", if ti == 0 { "M" } else { " L" });
            let rank = r.map_or_else(|| "none".to_string(), |r| r.to_string());
            let q = m
                .query_row
                .map_or_else(|| "-".to_string(), |r| r.to_string());
            let _ = writeln!(
                g.s,
                "<circle class=\"pt\" data-query=\"{qi}\" data-true=\"{}\" data-rank=\"{rank}\" cx=\"{px:.2}\" cy=\"{py:.2}\" \
                 r=\"3.5\" fill=\"{color}\"><title>query row {q}: true #{} is #{rank} compressed</title></circle>",
                ti + 1,
                ti + 1
            );
        }
        let _ = writeln!(
            g.s,
            "<path d=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-opacity=\"0.5\"/>"
        );
    }
    g.close()
}

/// Recall@k against bytes per vector: a point per container or codec, and the peers.
pub fn recall_vs_bytes(r: &Report, sa: bool) -> String {
    let mut g = Svg::open(
        "recall_vs_bytes",
        &format!("recall@{} versus bytes per vector", r.k),
        sa,
        W,
        H + 40.0,
    );
    let xs = r
        .entries
        .iter()
        .map(|e| e.bytes_per_vector)
        .chain(r.peers.iter().map(|p| p.bytes_per_vector));
    let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() {
        (lo / 1.5, hi * 1.5)
    } else {
        (1.0, 10.0)
    };
    let x = Scale::new(lo, hi, true, LEFT, W - RIGHT);
    let y = Scale::new(0.0, 1.05, false, H - BOTTOM, TOP);
    g.axes(
        &x,
        &y,
        "bytes per vector (log scale)",
        &format!("recall@{}", r.k),
        true,
    );
    for (i, e) in r.entries.iter().enumerate() {
        let (px, py) = (x.at(e.bytes_per_vector), y.at(e.recall));
        let _ = writeln!(
            g.s,
            "<circle class=\"pt ours\" data-label=\"{}\" data-x=\"{}\" data-y=\"{}\" cx=\"{px:.2}\" cy=\"{py:.2}\" r=\"5\" \
             fill=\"{}\"><title>{}: {} B/vector, recall {}</title></circle>",
            esc(&e.label),
            e.bytes_per_vector,
            e.recall,
            PALETTE[i % PALETTE.len()],
            esc(&e.label),
            num(e.bytes_per_vector),
            num(e.recall)
        );
        g.text(px + 7.0, py - 6.0, "start", &e.label);
    }
    for p in &r.peers {
        let (px, py) = (x.at(p.bytes_per_vector), y.at(p.recall));
        let _ = writeln!(
            g.s,
            "<rect class=\"pt peer\" data-label=\"{}\" data-x=\"{}\" data-y=\"{}\" x=\"{:.2}\" y=\"{:.2}\" width=\"8\" \
             height=\"8\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.5\"><title>{} (peer): {} B/vector, recall {}</title></rect>",
            esc(&p.name),
            p.bytes_per_vector,
            p.recall,
            px - 4.0,
            py - 4.0,
            esc(&p.name),
            num(p.bytes_per_vector),
            num(p.recall)
        );
        g.text(px + 7.0, py + 12.0, "start", &p.name);
    }
    let ly = H + 16.0;
    let _ = writeln!(
        g.s,
        "<circle cx=\"{LEFT}\" cy=\"{ly}\" r=\"5\" fill=\"#555\"/><text x=\"{}\" y=\"{}\">vectro (containers or codecs)</text>\
         <rect x=\"{}\" y=\"{}\" width=\"8\" height=\"8\" fill=\"none\" stroke=\"#333\"/><text x=\"{}\" y=\"{}\">peers</text>",
        LEFT + 10.0,
        ly + 4.0,
        LEFT + 220.0,
        ly - 4.0,
        LEFT + 234.0,
        ly + 4.0
    );
    g.close()
}

/// The figures of each entry, in order: their names and file name suffixes.
pub const ENTRY_FIGURES: [&str; 5] = ["cosine", "error_norm", "per_dim", "pca", "movement"];

/// Every figure of the report: (file name stem, SVG).
pub fn all(r: &Report, standalone: bool) -> Vec<(String, String)> {
    let mut v = vec![(
        "recall_vs_bytes".to_string(),
        recall_vs_bytes(r, standalone),
    )];
    for (i, e) in r.entries.iter().enumerate() {
        let stem = entry_stem(i, &e.label);
        let color = PALETTE[i % PALETTE.len()];
        v.push((format!("{stem}-cosine"), cosine(e, color, standalone)));
        v.push((
            format!("{stem}-error_norm"),
            error_norm(e, color, standalone),
        ));
        v.push((format!("{stem}-per_dim"), per_dim(e, color, standalone)));
        v.push((format!("{stem}-pca"), pca(e, standalone)));
        v.push((format!("{stem}-movement"), movement(e, standalone)));
    }
    v
}

/// `N-label` with only letters, digits, `.`, `_` and `-` kept: a safe file name.
pub fn entry_stem(i: usize, label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    format!("{}-{clean}", i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text_are_written_for_people_and_safely() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.98765), "0.9877");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(1.5e-7), "1.500e-7");
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(entry_stem(0, "a b/c.vectro"), "1-a_b_c.vectro");
    }

    #[test]
    fn ticks_fall_inside_the_range() {
        let s = Scale::new(0.0, 1.05, false, 0.0, 100.0);
        let t = s.ticks();
        assert!(
            t.len() >= 3 && t.iter().all(|&v| (0.0..=1.05).contains(&v)),
            "{t:?}"
        );
        let l = Scale::new(3.0, 5000.0, true, 0.0, 100.0);
        assert_eq!(
            l.ticks(),
            vec![
                5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0
            ]
        );
        let wide = Scale::new(0.5, 5e6, true, 0.0, 100.0);
        assert_eq!(wide.ticks(), vec![1.0, 100.0, 1e4, 1e6]);
    }
}
