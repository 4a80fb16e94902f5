//! The page, opened in headless Chromium, loads every image with no console error; a
//! screenshot is taken.
//!
//! The report is served by a tiny HTTP server started here (every request is logged), and a
//! probe page loads index.html in a same-origin iframe and writes, into its own DOM, how many
//! images the report has and which did not load (`complete && naturalWidth > 0`). Chromium's
//! `--dump-dom` prints that DOM after the load event, and `--enable-logging=stderr` prints every
//! console message, which the page (no script of its own) must not produce. A negative control
//! (one image deleted, one console.error injected) proves the checks can fail. The probe also
//! reads every chart's SVG and reports the colour of each driver's legend swatch: a driver has
//! one colour in every chart. REPORT.md must hold the conformance matrix and the disk table.
//!
//! Without Chromium the test prints why it is skipped; `STRATA_REQUIRE=chromium` makes that a
//! failure instead. STRATA_CHROMIUM overrides the binary (default /usr/bin/chromium).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROBE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>probe</title></head><body>
<pre id="result">PENDING</pre>
<iframe id="report" src="/index.html" style="width:1200px;height:900px"></iframe>
<script>
window.addEventListener('error', e => { document.getElementById('result').textContent = 'PROBE-ERROR ' + e.message; });
document.getElementById('report').addEventListener('load', () => {
  const doc = document.getElementById('report').contentDocument;
  const imgs = Array.from(doc.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.getAttribute('src'));
  const sizes = imgs.map(i => i.getAttribute('src') + '=' + i.naturalWidth + 'x' + i.naturalHeight);
  const head = 'IMAGES ' + imgs.length + ' BROKEN [' + broken.join(',') + '] SIZES [' + sizes.join(',') + ']';
  // Each chart's SVG: every legend label naming a driver, with the colour of the swatch drawn
  // just before it (the last filled or stroked shape).
  const svgs = Array.from(new Set(Array.from(doc.querySelectorAll('figure a[href$=".svg"]')).map(a => a.getAttribute('href'))));
  Promise.all(svgs.map(src => fetch('/' + src).then(r => r.text()).then(text => {
    const svg = new DOMParser().parseFromString(text, 'image/svg+xml');
    const found = [];
    let last = null;
    for (const el of svg.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      if (tag === 'text') {
        const label = el.textContent.trim();
        const m = label.match(/^([A-Za-z0-9_.-]+)(?: @ .*| \[.*)?$/);
        if (m && last) found.push(src + ':' + m[1] + '=' + last);
      } else if (['rect', 'polyline', 'path', 'line', 'circle', 'polygon'].includes(tag)) {
        const fill = el.getAttribute('fill'), stroke = el.getAttribute('stroke');
        const c = (fill && fill !== 'none') ? fill : stroke;
        if (c && c !== 'none') last = c.toUpperCase();
      }
    }
    return found;
  }))).then(all => {
    document.getElementById('result').textContent = head + ' COLORS [' + all.flat().join(',') + ']';
  }, e => {
    document.getElementById('result').textContent = head + ' COLORS-ERROR ' + e;
  });
});
</script>
</body></html>
"#;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A request the server answered: path and status.
type Log = Arc<Mutex<Vec<(String, u16)>>>;

/// Serves `root` and the probe page on 127.0.0.1 until the test ends.
fn serve(root: PathBuf) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, log) = (root.clone(), log2.clone());
            std::thread::spawn(move || handle(stream, &root, &log));
        }
    });
    (port, log)
}

fn handle(mut stream: TcpStream, root: &Path, log: &Log) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if req.len() > 65536 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&req).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    let (status, ctype, body): (u16, &str, Vec<u8>) = if path == "/__probe.html" {
        (200, "text/html; charset=utf-8", PROBE.as_bytes().to_vec())
    } else {
        let rel = path.trim_start_matches('/');
        let file = root.join(rel);
        let safe = !rel.split('/').any(|c| c == ".." || c.is_empty());
        match std::fs::read(&file) {
            Ok(bytes) if safe => {
                let ctype = match file.extension().and_then(|e| e.to_str()) {
                    Some("html") => "text/html; charset=utf-8",
                    Some("png") => "image/png",
                    Some("svg") => "image/svg+xml",
                    Some("md") => "text/markdown; charset=utf-8",
                    _ => "application/octet-stream",
                };
                (200, ctype, bytes)
            }
            _ => (404, "text/plain", b"not found".to_vec()),
        }
    };
    log.lock().unwrap().push((path, status));
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(&body);
}

/// Runs headless Chromium with `args` and a fresh profile; returns (stdout, stderr).
fn run_chromium(bin: &Path, args: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish in 120 s: {}",
                t_err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
    assert!(status.success(), "chromium failed ({status}): {stderr}");
    (stdout, stderr)
}

/// What the probe found: image count, the broken ones, and every console message.
struct PageCheck {
    images: usize,
    broken: Vec<String>,
    sizes: String,
    console: Vec<String>,
    not_found: Vec<String>,
    /// `chart.svg:label=#RRGGBB` for every legend label that is one word (a driver's name):
    /// the colour of the swatch drawn before it.
    colors: Vec<String>,
}

fn check_page(bin: &Path, dir: &Path) -> PageCheck {
    let (port, log) = serve(dir.to_path_buf());
    let url = format!("http://127.0.0.1:{port}/__probe.html");
    let (dom, stderr) = run_chromium(
        bin,
        &[
            "--virtual-time-budget=15000".to_string(),
            "--dump-dom".to_string(),
            url,
        ],
    );
    let result = dom
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("probe result missing from the DOM: {dom}"))
        .to_string();
    assert!(
        result.starts_with("IMAGES "),
        "the probe did not run: {result}\nstderr: {stderr}"
    );
    let images: usize = result["IMAGES ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let broken_list = result
        .split("BROKEN [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or("");
    let broken = broken_list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let sizes = result
        .split("SIZES [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or("")
        .to_string();
    // Console messages of any page (Chromium logs them as "CONSOLE" lines).
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let not_found = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, s)| *s != 200 && p != "/favicon.ico")
        .map(|(p, s)| format!("{s} {p}"))
        .collect();
    assert!(
        result.contains(" COLORS ["),
        "the probe read no chart colours: {result}"
    );
    let colors = result
        .split(" COLORS [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    PageCheck {
        images,
        broken,
        sizes,
        console,
        not_found,
        colors,
    }
}

#[test]
fn report_page_loads_every_image_without_console_errors_in_chromium() {
    let Some(bin) = chromium() else {
        strata_runtime::require::skip_or_fail(
            "chromium",
            "no chromium binary (looked for STRATA_CHROMIUM, /usr/bin/chromium, chromium-browser, google-chrome); install Debian's chromium package",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let summary = common::build_fixture_report(&out);

    let page = check_page(&bin, &out);
    assert_eq!(
        page.images,
        summary.charts.len(),
        "every chart is an <img>: {}",
        page.sizes
    );
    assert!(
        page.broken.is_empty(),
        "images that did not load: {:?}",
        page.broken
    );
    for c in &summary.charts {
        let want = format!("{}={}x{}", c.png.display(), c.width, c.height);
        assert!(page.sizes.contains(&want), "{want} not in {}", page.sizes);
    }
    assert!(
        page.console.is_empty(),
        "console messages: {:#?}",
        page.console
    );
    assert!(
        page.not_found.is_empty(),
        "failed requests: {:?}",
        page.not_found
    );

    // One colour per driver in every chart: each legend swatch of a driver (and of a peer,
    // and of the floors) has that driver's fixed colour, in every chart that shows it.
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in &page.colors {
        let (chart, rest) = c.split_once(':').unwrap();
        let (driver, color) = rest.split_once('=').unwrap();
        let want = strata_reports::driver_color_hex(driver);
        // The matrix's column heads are drivers on the status colours, not swatches.
        if chart != "conformance.svg"
            && ["copy", "overlay", "crun", "runc", "cp_a", "floor"].contains(&driver)
        {
            assert_eq!(color, want, "{driver} in {chart}: {:?}", page.colors);
            seen.entry(driver.to_string())
                .or_default()
                .push(chart.to_string());
        }
    }
    let copy_charts = seen.get("copy").cloned().unwrap_or_default();
    assert!(
        copy_charts.len() >= 3,
        "copy's colour checked in too few charts: {copy_charts:?} ({:?})",
        page.colors
    );
    assert!(
        seen.contains_key("overlay") && seen.contains_key("crun"),
        "{seen:?}"
    );
    // REPORT.md is the report in text: the matrix and the disk table.
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        md.contains("## Conformance matrix\n"),
        "no matrix in REPORT.md"
    );
    assert!(
        md.contains("| case | overlay @ runner-a |") && md.contains("| dir_rename | DECLARED |"),
        "matrix rows missing from REPORT.md"
    );
    assert!(
        md.contains("## Disk\n") && md.contains("| runner-b | copy | - | 248 MiB |"),
        "disk table missing from REPORT.md"
    );

    // Screenshot of the page itself.
    let (port, _log) = serve(out.clone());
    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("report.png");
    run_chromium(
        &bin,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400".to_string(),
            "--virtual-time-budget=15000".to_string(),
            format!("http://127.0.0.1:{port}/index.html"),
        ],
    );
    let png = common::check_png(&shot);
    assert_eq!((png.width, png.height), (1280, 2400));
    assert!(
        png.distinct_colors > 200,
        "screenshot looks blank: {} colours",
        png.distinct_colors
    );
    assert!(
        png.ink > 0.05,
        "screenshot has little drawn: {:.3}",
        png.ink
    );
    if let Some(keep) = std::env::var_os("STRATA_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    eprintln!(
        "screenshot: {} ({} colours)",
        shot.display(),
        png.distinct_colors
    );
}

#[test]
fn chromium_check_catches_a_missing_image_and_a_console_error() {
    let Some(bin) = chromium() else {
        strata_runtime::require::skip_or_fail("chromium", "no chromium binary; see the other test");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let summary = common::build_fixture_report(&out);
    let victim = &summary.charts[0].png;
    std::fs::remove_file(out.join(victim)).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let html = html.replace(
        "</body>",
        "<script>console.error('injected failure')</script></body>",
    );
    std::fs::write(out.join("index.html"), html).unwrap();
    // copy's swatch in the disk chart repainted: the colour check must see it.
    let svg = std::fs::read_to_string(out.join("disk.svg")).unwrap();
    let copy = strata_reports::driver_color_hex("copy");
    assert!(svg.contains(&copy));
    std::fs::write(out.join("disk.svg"), svg.replace(&copy, "#123456")).unwrap();

    let page = check_page(&bin, &out);
    assert!(
        page.colors.iter().any(|c| c == "disk.svg:copy=#123456"),
        "{:?}",
        page.colors
    );
    assert_eq!(page.broken, vec![victim.display().to_string()]);
    assert!(
        page.console.iter().any(|l| l.contains("injected failure")),
        "{:?}",
        page.console
    );
    assert_eq!(page.not_found, vec![format!("404 /{}", victim.display())]);
}

/// Records of three kernels (as `strata check --kernel` writes them, one array file), merged
/// into one report: the page has a kernel column each, the differing cell marked, and still
/// loads every image with no console message in Chromium.
#[test]
fn kernel_matrix_page_passes_in_chromium() {
    use strata_reports::record::{Conformance, ResultRecord, Runner, Status};
    let Some(bin) = chromium() else {
        strata_runtime::require::skip_or_fail(
            "chromium",
            "no chromium binary (looked for STRATA_CHROMIUM, /usr/bin/chromium, chromium-browser, google-chrome); install Debian's chromium package",
        );
        return;
    };
    let kernel = |id: &str, release: &str, virt: &str, m13: Status| {
        let mut r = ResultRecord::new(Runner {
            id: id.into(),
            kernel: Some(release.into()),
            kernel_source: Some(format!("test: {release}")),
            virtualization: Some(virt.into()),
            ..Runner::default()
        });
        for (case, status) in [("P-01", Status::Pass), ("M-13", m13)] {
            r.conformance.push(Conformance {
                driver: "fuse-overlayfs".into(),
                case: case.into(),
                status,
                detail: None,
            });
        }
        r
    };
    let records = vec![
        kernel(
            "box-6.1",
            "6.1.0-57-cloud-amd64",
            "emulated",
            Status::Declared,
        ),
        kernel(
            "box-6.12",
            "6.12.118+deb12-cloud-amd64",
            "kvm",
            Status::Pass,
        ),
        kernel("box-6.18", "6.18.44", "none", Status::Pass),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rec.json");
    std::fs::write(&file, serde_json::to_string_pretty(&records).unwrap()).unwrap();
    let out = tmp.path().join("report");
    let mut opts = strata_reports::ReportOptions::new(&out);
    opts.results = vec![file];
    let summary = strata_reports::build_report(&opts).unwrap();
    assert_eq!(summary.runners.len(), 3);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<section id=\"kernels\">"),
        "no kernel section"
    );
    assert!(
        html.contains("<th>6.1.0-57-cloud-amd64 (emulated)</th><th>6.12.118+deb12-cloud-amd64 (kvm)</th><th>6.18.44</th>"),
        "kernel columns missing"
    );
    assert!(html.contains("<tr class=\"differs\"><td>M-13</td>"));
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        md.contains("| M-13 | fuse-overlayfs | DECLARED | ok | ok | ≠ |"),
        "{md}"
    );

    let page = check_page(&bin, &out);
    assert_eq!(page.images, summary.charts.len(), "{}", page.sizes);
    assert!(
        page.broken.is_empty(),
        "images that did not load: {:?}",
        page.broken
    );
    assert!(
        page.console.is_empty(),
        "console messages: {:#?}",
        page.console
    );
    assert!(
        page.not_found.is_empty(),
        "failed requests: {:?}",
        page.not_found
    );
}
