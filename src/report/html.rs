//! The report as one HTML page: inline CSS and SVG, no script, no link, no font or image
//! to fetch, so it opens the same offline, from a mail attachment or from `vectro serve`.

use std::fmt::Write;

use super::svg::{self, esc, num};
use super::{Entry, Report};

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em}\
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}\
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f4f4f4}\
td.l,th.l{text-align:left}code,pre{background:#f6f6f6;padding:2px 4px;white-space:pre-wrap;word-break:break-all}\
.figs{display:flex;flex-wrap:wrap;gap:12px}.figure{border:1px solid #ddd;max-width:100%;height:auto}\
details{margin:.3em 0 1em}summary{cursor:pointer;color:#036}";

fn table(head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut s = String::from("<table><tr>");
    for (i, h) in head.iter().enumerate() {
        let _ = write!(
            s,
            "<th{}>{}</th>",
            if i == 0 { " class=\"l\"" } else { "" },
            esc(h)
        );
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(
                s,
                "<td{}>{}</td>",
                if i == 0 { " class=\"l\"" } else { "" },
                esc(c)
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

fn details(summary: &str, body: &str) -> String {
    format!(
        "<details><summary>{}</summary>\n{body}</details>\n",
        esc(summary)
    )
}

fn hist_table(bars: &[super::stats::Bar], what: &str) -> String {
    details(
        &format!("numbers: {what} ({} bars)", bars.len()),
        &table(
            &["from", "to", "rows"],
            bars.iter()
                .map(|b| vec![num(b.lo), num(b.hi), b.count.to_string()]),
        ),
    )
}

fn entry_section(i: usize, e: &Entry, k: usize) -> String {
    let color = svg::PALETTE[i % svg::PALETTE.len()];
    let r = &e.eval;
    let mut s = format!(
        "<section id=\"entry-{}\">\n<h2>{}. {}</h2>\n<p>container <code>{}</code>, codec <code>{}</code>: \
         {} B/vector in chunks ({} B/vector with the file's header and index), {:.2}× smaller than the original; \
         recall@{k} {} (rescored {}), {} search.</p>\n",
        i + 1,
        i + 1,
        esc(&e.label),
        esc(&e.container),
        esc(&e.codec),
        num(e.bytes_per_vector),
        num(e.file_bytes_per_vector),
        r.ratio,
        num(e.recall),
        num(e.rescored_recall),
        r.search
    );
    s.push_str("<h3>Reconstruction: cosine and error norm per row</h3>\n<div class=\"figs\">\n");
    s.push_str(&svg::cosine(e, color, false));
    s.push_str(&svg::error_norm(e, color, false));
    s.push_str("</div>\n");
    s.push_str(&table(
        &[
            "cosine mean",
            "min",
            "p1",
            "p5",
            "median",
            "error norm mean",
            "max",
            "mse",
            "nmse",
            "max |error|",
        ],
        [vec![
            format!("{:.7}", r.cosine_mean),
            format!("{:.7}", r.cosine_min),
            format!("{:.7}", r.cosine_p1),
            format!("{:.7}", r.cosine_p5),
            format!("{:.7}", r.cosine_median),
            num(e.error_norm_mean),
            num(e.error_norm_max),
            num(r.mse),
            num(r.nmse),
            num(r.max_abs_error),
        ]],
    ));
    s.push_str(&hist_table(&e.cosine_hist, "1 − cosine"));
    s.push_str(&hist_table(&e.error_norm_hist, "error norm"));
    s.push_str("<h3>Error per dimension</h3>\n");
    s.push_str(&svg::per_dim(e, color, false));
    s.push_str(&table(
        &["worst dimensions", "RMS error", "mean |error|"],
        e.per_dim.worst.iter().map(|&d| {
            vec![
                d.to_string(),
                num(e.per_dim.rms[d]),
                num(e.per_dim.mean_abs[d]),
            ]
        }),
    ));
    s.push_str(&details(
        &format!("numbers: every dimension ({})", e.per_dim.rms.len()),
        &table(
            &["dimension", "RMS error", "mean |error|"],
            e.per_dim
                .rms
                .iter()
                .zip(&e.per_dim.mean_abs)
                .enumerate()
                .map(|(d, (r, a))| vec![d.to_string(), num(*r), num(*a)]),
        ),
    ));
    s.push_str("<h3>PCA: originals beside their reconstructions</h3>\n");
    s.push_str(&svg::pca(e, false));
    let _ = writeln!(
        s,
        "<p>Mean distance between a row and its reconstruction in this plane: {}.</p>",
        num(e.pca.mean_shift)
    );
    s.push_str(&details(
        &format!("numbers: the {} rows drawn", e.pca.rows.len()),
        &table(
            &[
                "row",
                "original PC 1",
                "PC 2",
                "reconstruction PC 1",
                "PC 2",
            ],
            e.pca
                .rows
                .iter()
                .zip(e.pca.original.iter().zip(&e.pca.reconstruction))
                .map(|(r, (o, c))| vec![r.to_string(), num(o[0]), num(o[1]), num(c[0]), num(c[1])]),
        ),
    ));
    s.push_str("<h3>How far the true top 10 moved</h3>\n");
    s.push_str(&svg::movement(e, false));
    let mut head = vec!["query row".to_string()];
    head.extend((1..=super::MOVEMENT_TOP).map(|i| format!("true #{i}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    s.push_str(&table(
        &head,
        e.movement.iter().map(|m| {
            let mut row = vec![m.query_row.map_or_else(|| "-".into(), |q| q.to_string())];
            row.extend(
                m.ranks
                    .iter()
                    .map(|r| r.map_or_else(|| format!("> {}", m.depth), |r| r.to_string())),
            );
            row
        }),
    ));
    s.push_str("</section>\n");
    s
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    let _ = writeln!(
        s,
        "<title>vectro report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        esc(&r.original)
    );
    let _ = writeln!(
        s,
        "<h1>What compression did to <code>{}</code></h1>\n<p>{} rows × {} dims compared{}; \
         recall over {} sampled queries ({} similarity), rescored = top {} re-ranked with the originals.</p>",
        esc(&r.original),
        r.rows,
        r.dims,
        if r.rows < r.original_rows {
            format!(" (the first {} of {})", r.rows, r.original_rows)
        } else {
            String::new()
        },
        r.queries,
        r.metric,
        r.rerank
    );
    let _ = writeln!(
        s,
        "<p>Made by:</p>\n<pre id=\"command\">{}</pre>",
        esc(&r.command)
    );
    s.push_str("<h2>Summary</h2>\n");
    s.push_str(&table(
        &[
            "container / codec",
            "codec",
            "B/vector",
            "file B/vector",
            "ratio",
            "cosine mean",
            "cosine p1",
            "nmse",
            &format!("recall@{}", r.k),
            "rescored",
            "search",
        ],
        r.entries.iter().map(|e| {
            vec![
                e.label.clone(),
                e.codec.clone(),
                num(e.bytes_per_vector),
                num(e.file_bytes_per_vector),
                format!("{:.2}", e.eval.ratio),
                format!("{:.6}", e.eval.cosine_mean),
                format!("{:.6}", e.eval.cosine_p1),
                num(e.eval.nmse),
                format!("{:.4}", e.recall),
                format!("{:.4}", e.rescored_recall),
                e.eval.search.to_string(),
            ]
        }),
    ));
    s.push_str(&svg::recall_vs_bytes(r, false));
    s.push_str(&table(
        &[
            "point",
            "kind",
            "bytes per vector",
            &format!("recall@{}", r.k),
        ],
        r.entries
            .iter()
            .map(|e| {
                vec![
                    e.label.clone(),
                    "vectro".into(),
                    num(e.bytes_per_vector),
                    format!("{:.4}", e.recall),
                ]
            })
            .chain(r.peers.iter().map(|p| {
                vec![
                    p.name.clone(),
                    "peer".into(),
                    num(p.bytes_per_vector),
                    format!("{:.4}", p.recall),
                ]
            })),
    ));
    for (i, e) in r.entries.iter().enumerate() {
        s.push_str(&entry_section(i, e, r.k));
    }
    let _ = writeln!(
        s,
        "<p><small>{:.1} s, peak memory {} MiB.</small></p>\n</body>\n</html>",
        r.seconds,
        r.peak_rss_bytes >> 20
    );
    s
}
