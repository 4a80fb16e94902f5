//! Renders the committed fixture (criterion output + two runner records) and checks what was
//! written: valid PNG and SVG charts with the expected series and labels, and a page and a
//! Markdown file that link them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{build_fixture_report, check_png, check_svg, svg_texts};

const EXPECTED_CHARTS: &[&str] = &[
    "lines-union_prepare-layers",
    "lines-copy_up-bytes",
    "lines-rootfs_switch-host_mounts",
    "bars-rootfs_switch",
    "bars-container_start",
    "lines-commit-files",
    "bars-lonely",
    "phases",
    "conformance",
    "disk",
];

#[test]
fn fixture_report_has_every_chart_as_valid_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let summary = build_fixture_report(&out);

    assert_eq!(summary.runners, vec!["runner-a", "runner-b"]);
    let ids: Vec<&str> = summary.charts.iter().map(|c| c.id.as_str()).collect();
    for want in EXPECTED_CHARTS {
        assert!(ids.contains(want), "chart {want} missing from {ids:?}");
    }
    assert_eq!(
        ids.len(),
        EXPECTED_CHARTS.len(),
        "unexpected charts: {ids:?}"
    );

    for c in &summary.charts {
        let png = check_png(&out.join(&c.png));
        assert_eq!(
            (png.width, png.height),
            (c.width, c.height),
            "{}: PNG size",
            c.id
        );
        assert!(
            png.distinct_colors >= 12,
            "{}: only {} colours, looks blank",
            c.id,
            png.distinct_colors
        );
        assert!(
            png.ink > 0.01,
            "{}: only {:.3} of the pixels are drawn",
            c.id,
            png.ink
        );
        let svg = check_svg(&out.join(&c.svg), c.width, c.height);
        let texts = svg_texts(&svg);
        assert!(
            texts.contains(&c.title),
            "{}: title {:?} not in the SVG",
            c.id,
            c.title
        );
        for s in &c.series {
            assert!(
                texts.iter().any(|t| t == s),
                "{}: series {s:?} not in the SVG texts {texts:?}",
                c.id
            );
        }
    }
    // Nothing but the report is left beside it (no staging directory).
    let beside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("report")]);
}

#[test]
fn sweep_chart_has_runners_floors_log_axes_and_kernel_walls() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let summary = build_fixture_report(&out);
    let c = summary
        .charts
        .iter()
        .find(|c| c.id == "lines-union_prepare-layers")
        .unwrap();
    // One series per driver and runner: criterion's (runner-a) and runner-b's record.
    for s in [
        "overlay_mount2 @ runner-a",
        "copy @ runner-a",
        "raw_mount_floor (floor) @ runner-a",
        "overlay_mount2 @ runner-b",
        "overlay_lowerdir_plus @ runner-b",
        "copy @ runner-b",
        // Declared a peer in runner-b's record, whatever its name says.
        "cp_a_floor (peer) @ runner-b",
        "kernel wall: 500 lower layers (OVL_MAX_STACK)",
        "mount(2) one-page option limit: 122 layers on runner-b",
        "mount(2) one-page option limit: 140 layers on runner-a",
    ] {
        assert!(
            c.series.iter().any(|x| x == s),
            "series {s:?} missing from {:?}",
            c.series
        );
    }
    let svg = std::fs::read_to_string(out.join(&c.svg)).unwrap();
    let texts = svg_texts(&svg);
    assert!(
        texts.iter().any(|t| t == "layers (log scale)"),
        "x axis label: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t == "median time per iteration (log scale), band = 95% CI"),
        "y axis label: {texts:?}"
    );
    // Decade ticks on the log axis.
    for tick in ["1", "10", "100", "500", "1 ms", "100 ms"] {
        assert!(
            texts.iter().any(|t| t == tick),
            "tick {tick} missing: {texts:?}"
        );
    }
    // Floors are dashed: the SVG has dashed polylines only if dashes were drawn as segments;
    // plotters draws dashes as many short lines, so a floor adds many <polyline>/<line> elements.
    let polylines = svg.matches("<polyline").count() + svg.matches("<line").count();
    assert!(
        polylines > 40,
        "expected dashed segments, found {polylines} line elements"
    );

    // Host-mount sweep: linear x would squash 30 against 3000; it must be log.
    let c = summary
        .charts
        .iter()
        .find(|c| c.id == "lines-rootfs_switch-host_mounts")
        .unwrap();
    let texts = svg_texts(&std::fs::read_to_string(out.join(&c.svg)).unwrap());
    assert!(
        texts.iter().any(|t| t == "host mounts (log scale)"),
        "{texts:?}"
    );
    assert!(
        c.series
            .iter()
            .any(|s| s == "floor_fork_exec (floor) @ runner-b"),
        "{:?}",
        c.series
    );
}

#[test]
fn bars_phases_matrix_and_disk_show_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let summary = build_fixture_report(&out);
    let texts = |id: &str| {
        let c = summary.charts.iter().find(|c| c.id == id).unwrap();
        (
            c.clone(),
            svg_texts(&std::fs::read_to_string(out.join(&c.svg)).unwrap()),
        )
    };

    let (c, t) = texts("bars-container_start");
    assert_eq!(c.title, "Start latency per runtime");
    // The legend is the drivers' colours; bars per runner in shades.
    assert_eq!(c.series, vec!["copy", "overlay", "crun", "runc", "floor"]);
    // (subjects by driver, then peers, then floors: the order of the categories)
    for cat in [
        "crun (peer)",
        "runc (peer)",
        "floor (floor)",
        "strata_overlay_mount_uts_ipc_pid",
    ] {
        assert!(t.iter().any(|x| x == cat), "category {cat} missing: {t:?}");
    }
    assert!(
        t.iter()
            .any(|x| x == "median time (log scale), whiskers = 95% CI"),
        "{t:?}"
    );

    let (c, t) = texts("bars-rootfs_switch");
    assert_eq!(c.title, "Start latency per root switch");
    assert!(
        t.iter().any(|x| x == "pivot_root · host_mounts=3000"),
        "{t:?}"
    );

    let (c, t) = texts("phases");
    // Median per phase with its spread, one series per runner (not one bar per run).
    assert_eq!(
        c.series,
        vec![
            "overlay: median of 3 runs @ runner-a",
            "overlay: median of 12 runs @ runner-b"
        ]
    );
    for phase in ["prepare", "mount", "namespaces", "pivot_root", "exec"] {
        assert!(t.iter().any(|x| x == phase), "{phase}: {t:?}");
    }

    let (c, t) = texts("conformance");
    // runner-b fails a fuse case runner-a skipped: the runners disagree, one column each.
    assert!(
        c.series.contains(&"fuse @ runner-b".to_string()),
        "{:?}",
        c.series
    );
    for cell in ["pass", "FAIL", "declared", "skip", "dir_rename"] {
        assert!(
            t.iter().any(|x| x == cell),
            "{cell} missing from the matrix"
        );
    }

    let (c, t) = texts("disk");
    assert_eq!(c.series, vec!["copy", "overlay"]);
    assert!(t.iter().any(|x| x == "per mount: overlay"), "{t:?}");
    // 202 MiB to 1.8 GiB spans less than a decade: a linear axis from zero.
    assert!(t.iter().all(|x| !x.contains("log scale")), "{t:?}");
    assert!(t.iter().any(|x| x.ends_with("GiB")), "byte ticks: {t:?}");
}

#[test]
fn page_and_markdown_link_every_chart_and_explain_the_runners() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let summary = build_fixture_report(&out);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();

    // Self-contained: no external resource, no script.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference in the page"
    );
    assert!(!html.contains("<script"), "the page needs no script");
    for c in &summary.charts {
        let png = c.png.to_str().unwrap();
        assert!(
            html.contains(&format!("<img src=\"{png}\"")),
            "{png} not shown in index.html"
        );
        assert!(html.contains(&format!("id=\"chart-{}\"", c.id)));
        assert!(md.contains(&format!("]({png})")), "{png} not in REPORT.md");
    }
    // Every in-page link points at an existing anchor.
    for part in html.split("href=\"#").skip(1) {
        let target = &part[..part.find('"').unwrap()];
        assert!(
            html.contains(&format!("id=\"{target}\"")),
            "dangling link #{target}"
        );
    }
    // "Which driver": one answer per workload and runner, linked to their charts.
    assert!(html.contains("Which driver, for what, on this host"));
    assert!(html.contains("<a href=\"#chart-lines-union_prepare-layers\">"));
    assert!(
        html.contains("<a href=\"#chart-disk\">")
            && html.contains("<a href=\"#chart-conformance\">")
    );
    let b = summary
        .advice
        .iter()
        .find(|a| a.runner == "runner-b")
        .unwrap();
    let workloads: Vec<&str> = b.answers.iter().map(|a| a.workload.as_str()).collect();
    assert_eq!(workloads, strata_reports::advice::WORKLOADS.to_vec());
    for a in &b.answers {
        assert_eq!(a.pick.as_deref(), Some("overlay"), "{a:?}");
        assert!(a.divergences.contains("dir_rename"), "{a:?}");
        assert!(a.figures.iter().any(|f| f.contains(" [")), "{a:?}");
    }
    assert!(
        b.lacks
            .iter()
            .any(|l| l.starts_with("fuse: fails conformance")),
        "{:?}",
        b.lacks
    );
    assert!(md.contains("## Conformance matrix") && md.contains("## Disk"));
    assert!(md.contains("| dir_rename | DECLARED |"), "{md}");

    // How the environments differ.
    for field in [
        "kernel",
        "cgroup",
        "store fs (strata check, disk, phases)",
        "cores",
    ] {
        assert!(
            summary.to_string().contains("runner-a")
                && html.contains(&format!("<tr class=\"differs\"><th>{field}</th>")),
            "{field} not flagged"
        );
    }
    assert!(md.contains("The runners differ in: **kernel"), "{md}");
    // Ratios against the floor and the peers of the series' own mechanism: the library
    // series are no process, so never against crun or runc.
    assert!(html.contains("vs floor_fork_exec") && html.contains("vs floor"));
    assert!(!html.contains("vs crun") && !html.contains("vs runc"));
    assert!(md.contains("vs cp_a_floor (peer)"), "{md}");
    assert!(md.contains("| runner-b | container_start | strata_overlay_mount_uts_ipc_pid |"));
}

#[test]
fn a_conformance_only_record_gets_the_matrix_and_names_the_failing_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("check.json");
    std::fs::write(
        &rec,
        r#"{"schema": "strata-result/1", "runner": {"id": "laptop", "kernel": "6.8.0"},
            "conformance": [
              {"driver": "overlay", "case": "dir_rename", "status": "declared", "detail": "EXDEV"},
              {"driver": "copy", "case": "dir_rename", "status": "pass"},
              {"driver": "copy", "case": "whiteout <b>", "status": "fail", "detail": "a & b"}]}"#,
    )
    .unwrap();
    let mut opts = strata_reports::ReportOptions::new(tmp.path().join("r"));
    opts.results = vec![rec];
    let s = strata_reports::build_report(&opts).unwrap();
    let ids: Vec<&str> = s.charts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["conformance"]);
    assert!(s.advice[0].answers.is_empty());
    assert!(
        s.advice[0]
            .lacks
            .iter()
            .any(|l| l.starts_with("copy: fails conformance")),
        "{:?}",
        s.advice[0].lacks
    );
    let html = std::fs::read_to_string(s.out.join("index.html")).unwrap();
    // Text from records is escaped in the page.
    assert!(
        html.contains("whiteout &lt;b&gt;")
            && html.contains("a &amp; b")
            && !html.contains("<b>fail")
    );
    let png = check_png(&s.out.join("conformance.png"));
    assert!(png.distinct_colors > 10);
}
