//! `vectro report`: one self-contained page whose figures hold the numbers of its `--json`,
//! which are eval's; bad inputs refused with their exit code and nothing written; memory
//! flat as the input grows.

use std::path::Path;

use serde_json::Value;

use crate::helpers::*;

/// `x.npy` (3000 × 32) and two containers of it, `a.vectro` (int8) and `b.vectro` (binary).
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_npy(dir.path(), "x.npy", 3000, 32, 5);
    for (out, codec) in [("a.vectro", "int8"), ("b.vectro", "binary")] {
        vectro()
            .current_dir(dir.path())
            .args([
                "compress", "-q", "--in", "x.npy", "--codec", codec, "--out", out,
            ])
            .assert()
            .success();
    }
    dir
}

fn json_of(dir: &Path, args: &[&str]) -> Value {
    let out = vectro()
        .current_dir(dir)
        .args(["report", "--json"])
        .args(args)
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// Every `<svg ...>...</svg>` of a page, with its `data-figure`.
fn figures(html: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<svg") {
        let end = rest[at..].find("</svg>").expect("a closed svg") + at + 6;
        let svg = &rest[at..end];
        let name = attr(svg, "data-figure").expect("each figure is named");
        v.push((name, svg.to_string()));
        rest = &rest[end..];
    }
    v
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

/// The opening tags of the data marks of class `class` (e.g. `bar`, `pt orig`).
fn marks<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
    let key = format!("class=\"{class}\"");
    svg.match_indices(&key)
        .map(|(i, _)| {
            let start = svg[..i].rfind('<').unwrap();
            &svg[start..i + svg[i..].find('>').unwrap()]
        })
        .collect()
}

fn num_attr(tag: &str, name: &str) -> f64 {
    attr(tag, name).unwrap().parse().unwrap()
}

/// `a` is `b` up to serde_json's float parsing, which may be off by an ulp.
fn same(a: f64, b: &Value) -> bool {
    let b = b.as_f64().unwrap();
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// Nothing on the page would make a browser fetch anything.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http://", "https://", "src=", "href=", "url(", "@import", "<script", "<link", "<img",
        "<iframe", "<object", "<embed",
    ] {
        assert!(!lower.contains(bad), "the page holds {bad:?}");
    }
}

#[test]
fn the_page_is_self_contained_and_each_figure_holds_the_numbers_of_the_json() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("peers.json"),
        r#"[{"name": "faiss PQ m=8", "bytes_per_vector": 8, "recall": 0.41, "k": 10},
            {"name": "scann <b>", "bytes_per_vector": 16.5, "recall": 0.62}]"#,
    )
    .unwrap();
    let v = json_of(
        d,
        &[
            "--orig",
            "x.npy",
            "a.vectro",
            "b.vectro",
            "--peers",
            "peers.json",
            "--svg-dir",
            "figs",
            "--pca-sample",
            "300",
            "--movement-queries",
            "4",
        ],
    );
    // The default name, beside the first container: what `vectro serve` links to.
    assert_eq!(v["output"], "a.report.html");
    let html = std::fs::read_to_string(d.join("a.report.html")).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("scann &lt;b&gt;"), "names are escaped");
    assert!(
        html.contains("vectro report --json --orig x.npy a.vectro b.vectro --peers peers.json"),
        "the command is on the page"
    );
    assert_eq!(
        v["command"].as_str().unwrap().split(' ').nth(1),
        Some("report")
    );

    let figs = figures(&html);
    let names: Vec<&str> = figs.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "recall_vs_bytes",
            "cosine",
            "error_norm",
            "per_dim",
            "pca",
            "movement",
            "cosine",
            "error_norm",
            "per_dim",
            "pca",
            "movement"
        ]
    );
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);

    // Recall against bytes: one point per container, one per peer, at the JSON's numbers.
    let rvb = &figs[0].1;
    let ours = marks(rvb, "pt ours");
    assert_eq!(ours.len(), 2);
    for (m, e) in ours.iter().zip(entries) {
        assert!(same(num_attr(m, "data-x"), &e["bytes_per_vector"]));
        assert!(same(num_attr(m, "data-y"), &e["recall"]));
    }
    let peers = marks(rvb, "pt peer");
    assert_eq!(peers.len(), 2);
    assert_eq!(num_attr(peers[1], "data-x"), 16.5);
    assert_eq!(num_attr(peers[0], "data-y"), 0.41);
    // int8 keeps 32 one-byte codes a row, plus its chunks' framing.
    let bpv = entries[0]["bytes_per_vector"].as_f64().unwrap();
    assert!((32.0..40.0).contains(&bpv), "{bpv}");
    // binary: 4 bytes of bits and a 4-byte scale a row.
    assert!(entries[1]["bytes_per_vector"].as_f64().unwrap() < 10.0);

    for (i, e) in entries.iter().enumerate() {
        let fig = |name: &str| {
            &figs[1
                + 5 * i
                + ["cosine", "error_norm", "per_dim", "pca", "movement"]
                    .iter()
                    .position(|n| *n == name)
                    .unwrap()]
            .1
        };
        for (name, key) in [("cosine", "cosine_hist"), ("error_norm", "error_norm_hist")] {
            let bars = marks(fig(name), "bar");
            let want = e[key].as_array().unwrap();
            assert!(
                !want.is_empty() && want.len() <= 40,
                "{key}: {}",
                want.len()
            );
            assert_eq!(bars.len(), want.len(), "{name} of entry {i}");
            let mut total = 0;
            for (b, w) in bars.iter().zip(want) {
                assert!(same(num_attr(b, "data-count"), &w["count"]));
                assert!(same(num_attr(b, "data-lo"), &w["lo"]), "{b} vs {w}");
                total += w["count"].as_u64().unwrap();
            }
            assert_eq!(total, 3000, "{key} counts every row once");
        }
        let dims = marks(fig("per_dim"), "bar");
        let rms = e["per_dim"]["rms"].as_array().unwrap();
        assert_eq!(dims.len(), 32);
        for (b, r) in dims.iter().zip(rms) {
            assert!(same(num_attr(b, "data-value"), r));
        }
        // The per-dimension errors are the eval's MSE, split by dimension.
        let mse: f64 = rms.iter().map(|r| r.as_f64().unwrap().powi(2)).sum::<f64>() / 32.0;
        let eval_mse = e["eval"]["mse"].as_f64().unwrap();
        assert!((mse / eval_mse - 1.0).abs() < 1e-9, "{mse} vs {eval_mse}");

        let pca = fig("pca");
        let (orig, recon) = (marks(pca, "pt orig"), marks(pca, "pt recon"));
        assert_eq!((orig.len(), recon.len()), (300, 300));
        let first = &e["pca"]["original"][0];
        assert!(same(num_attr(orig[0], "data-x"), &first[0]));
        assert!(same(num_attr(orig[0], "data-y"), &first[1]));
        let ex = e["pca"]["explained"].as_array().unwrap();
        let (e1, e2) = (ex[0].as_f64().unwrap(), ex[1].as_f64().unwrap());
        assert!(e1 >= e2 && e2 > 0.0 && e1 + e2 <= 1.0, "{e1} {e2}");

        let moved = marks(fig("movement"), "pt");
        let mv = e["movement"].as_array().unwrap();
        assert_eq!(mv.len(), 4);
        assert_eq!(moved.len(), 40);
        for (m, want) in moved
            .iter()
            .zip(mv.iter().flat_map(|q| q["ranks"].as_array().unwrap()))
        {
            let got = attr(m, "data-rank").unwrap();
            match want.as_u64() {
                Some(r) => assert_eq!(got, r.to_string()),
                None => assert_eq!(got, "none"),
            }
        }
    }
    // Lossy binary codes move the true neighbours; int8 barely.
    let missed = |e: &Value| {
        e["movement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|q| q["ranks"].as_array().unwrap().clone())
            .filter(|r| r.as_u64().is_none_or(|r| r > 10))
            .count()
    };
    assert!(missed(&entries[0]) < missed(&entries[1]));

    // The standalone SVG files are the page's figures, with their namespace.
    let mut files: Vec<String> = std::fs::read_dir(d.join("figs"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 11);
    assert!(
        files.contains(&"1-a.vectro-pca.svg".to_string()),
        "{files:?}"
    );
    let svg = std::fs::read_to_string(d.join("figs/2-b.vectro-cosine.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(
        svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1),
        figs[6].1.clone() + "\n"
    );
}

#[test]
fn the_numbers_are_the_ones_eval_gives() {
    let dir = setup();
    let d = dir.path();
    let v = json_of(
        d,
        &["--orig", "x.npy", "a.vectro", "b.vectro", "--out", "r.html"],
    );
    for (i, comp) in ["a.vectro", "b.vectro"].iter().enumerate() {
        let out = vectro()
            .current_dir(d)
            .args([
                "eval", "--json", "--k", "10", "--orig", "x.npy", "--comp", comp,
            ])
            .assert()
            .success();
        let ev: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        let e = &v["entries"][i];
        for key in [
            "rows",
            "dims",
            "container_bytes",
            "cosine_mean",
            "cosine_min",
            "cosine_p1",
            "cosine_p5",
            "cosine_median",
            "mse",
            "nmse",
            "max_abs_error",
            "queries",
            "search",
        ] {
            assert_eq!(e["eval"][key], ev[key], "{comp}: {key}");
        }
        assert_eq!(e["eval"]["recall"], ev["recall"], "{comp}");
        assert_eq!(e["recall"], ev["recall"][0]["recall"]);
        assert_eq!(e["rescored_recall"], ev["recall"][0]["rescored"]);
    }
}

#[test]
fn codecs_are_tried_on_the_first_rows_and_leave_nothing_behind() {
    let dir = setup();
    let d = dir.path();
    let before = std::fs::read_dir(d).unwrap().count();
    let v = json_of(
        d,
        &[
            "--orig",
            "x.npy",
            "--codecs",
            "int8,int4,binary",
            "--rows",
            "1200",
        ],
    );
    assert_eq!(v["output"], "x.report.html");
    assert_eq!(
        (v["rows"].as_u64(), v["original_rows"].as_u64()),
        (Some(1200), Some(3000))
    );
    let labels: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["int8", "int4", "binary"]);
    let bpv: Vec<f64> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["bytes_per_vector"].as_f64().unwrap())
        .collect();
    assert!(bpv[0] > bpv[1] && bpv[1] > bpv[2], "{bpv:?}");
    for e in v["entries"].as_array().unwrap() {
        assert_eq!(e["eval"]["rows"], 1200);
    }
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        before + 1,
        "only the page is new"
    );
    let html = std::fs::read_to_string(d.join("x.report.html")).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("the first 1200 of 3000"));
}

#[test]
fn bad_inputs_are_named_with_their_exit_code_and_nothing_is_written() {
    let dir = setup();
    let d = dir.path();
    make_npy(d, "other_dims.npy", 3000, 16, 1);
    make_npy(d, "other_rows.npy", 2000, 32, 1);
    std::fs::write(
        d.join("bad_peers.json"),
        r#"[{"name": "x", "bytes_per_vector": 8, "recall": 1.5}]"#,
    )
    .unwrap();
    std::fs::write(
        d.join("k_peers.json"),
        r#"[{"name": "x", "bytes_per_vector": 8, "recall": 0.5, "k": 100}]"#,
    )
    .unwrap();
    std::fs::write(d.join("not_peers.json"), r#"{"name": "x"}"#).unwrap();
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["--orig", "other_dims.npy", "a.vectro"],
            3,
            &["dims differ", "other_dims.npy", "a.vectro"],
        ),
        (
            &["--orig", "other_rows.npy", "a.vectro"],
            3,
            &["rows differ", "other_rows.npy", "a.vectro"],
        ),
        // The second container is checked before the first is measured.
        (
            &["--orig", "x.npy", "a.vectro", "nope.vectro"],
            4,
            &["nope.vectro"],
        ),
        (&["--orig", "missing.npy", "a.vectro"], 4, &["missing.npy"]),
        (
            &["--orig", "x.npy", "a.vectro", "--peers", "bad_peers.json"],
            3,
            &["bad_peers.json", "peer 0", "recall"],
        ),
        (
            &["--orig", "x.npy", "a.vectro", "--peers", "k_peers.json"],
            3,
            &["k_peers.json", "k differs"],
        ),
        (
            &["--orig", "x.npy", "a.vectro", "--peers", "not_peers.json"],
            3,
            &["not_peers.json", "JSON array"],
        ),
        (
            &["--orig", "x.npy", "a.vectro", "--peers", "no_peers.json"],
            4,
            &["no_peers.json"],
        ),
        (
            &["--orig", "x.npy", "--codecs", "int8,nosuch"],
            2,
            &["nosuch"],
        ),
        (&["--orig", "x.npy", "a.vectro", "--k", "0"], 2, &["--k"]),
        (&["--orig", "x.npy"], 2, &["CONTAINER"]),
    ];
    for (args, code, needles) in cases {
        let o = vectro_std()
            .current_dir(d)
            .args(["report", "-q", "--out", "r.html", "--svg-dir", "figs"])
            .args(*args)
            .output()
            .unwrap();
        assert_fails(&o, *code, needles);
        assert!(!d.join("r.html").exists(), "{args:?} left a page");
        assert!(!d.join("figs").exists(), "{args:?} left figures");
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("r.html") || n.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    // An existing page is kept unless --force.
    std::fs::write(d.join("a.report.html"), "mine").unwrap();
    let o = vectro_std()
        .current_dir(d)
        .args(["report", "-q", "--orig", "x.npy", "a.vectro"])
        .output()
        .unwrap();
    assert_fails(&o, 2, &["a.report.html"]);
    assert_eq!(
        std::fs::read_to_string(d.join("a.report.html")).unwrap(),
        "mine"
    );
    vectro()
        .current_dir(d)
        .args(["report", "-q", "--force", "--orig", "x.npy", "a.vectro"])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(d.join("a.report.html"))
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
}

/// Peak RSS of a report on `rows` rows of 256 dims (1 KiB a row of float32).
fn report_peak(dir: &Path, rows: u64) -> u64 {
    vectro()
        .current_dir(dir)
        .args([
            "generate", "-q", "--dims", "256", "--force", "--out", "m.npy", "--rows",
        ])
        .arg(rows.to_string())
        .assert()
        .success();
    vectro()
        .current_dir(dir)
        .args([
            "compress",
            "-q",
            "--no-fsync",
            "--force",
            "--in",
            "m.npy",
            "--out",
            "m.vectro",
        ])
        .assert()
        .success();
    let v = json_of(dir, &["--force", "--orig", "m.npy", "m.vectro"]);
    assert_eq!(v["rows"], rows);
    v["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn memory_stays_flat_as_the_input_grows() {
    let dir = tempfile::tempdir().unwrap();
    let small = report_peak(dir.path(), 65_536); // 64 MiB of float32
    let large = report_peak(dir.path(), 262_144); // 256 MiB
    // 24 MiB: the noise the other memory tests allow (pages of the input are released in
    // 16 MiB steps). Holding the input, or a value per row, would grow by 192 MiB.
    assert!(
        large.saturating_sub(small) < 24 << 20,
        "peak RSS grew by {} MiB ({} -> {} MiB) with a 4x larger input",
        large.saturating_sub(small) >> 20,
        small >> 20,
        large >> 20
    );
}

#[test]
fn png_figures_decode_to_twice_the_svg_size_with_marks_on_them() {
    let dir = setup();
    let d = dir.path();
    vectro()
        .current_dir(d)
        .args([
            "report",
            "-q",
            "--orig",
            "x.npy",
            "a.vectro",
            "b.vectro",
            "--svg-dir",
            "figs",
            "--png",
            "--pca-sample",
            "200",
        ])
        .assert()
        .success();
    let mut svgs: Vec<_> = std::fs::read_dir(d.join("figs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    svgs.sort();
    assert_eq!(svgs.len(), 11);
    for svg in &svgs {
        let text = std::fs::read_to_string(svg).unwrap();
        let attr = |name: &str| -> u32 {
            let at = text.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            text[at..].split('"').next().unwrap().parse().unwrap()
        };
        let (w, h) = (attr("width"), attr("height"));
        let png = std::fs::read(svg.with_extension("png")).unwrap();
        let px = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!(
            (px.width(), px.height()),
            (2 * w, 2 * h),
            "{}",
            svg.display()
        );
        // Not an empty frame: bars, points, axes and labels cover far more than a border.
        let marked = px
            .pixels()
            .iter()
            .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
            .count() as u32;
        assert!(
            marked > 8 * (w + h),
            "{}: {marked} non-white pixels",
            svg.display()
        );
    }
    // --png needs --svg-dir.
    let o = vectro_std()
        .current_dir(d)
        .args([
            "report", "-q", "--orig", "x.npy", "a.vectro", "--out", "n.html", "--png",
        ])
        .output()
        .unwrap();
    assert_fails(&o, 2, &["--svg-dir"]);
}
