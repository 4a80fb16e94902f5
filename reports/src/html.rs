//! index.html: one self-contained page (inline CSS, no script, no external resource); the chart
//! images sit beside it.

use std::fmt::Write;

use crate::merge::human_ns;
use crate::regress::Verdict;
use crate::report::Report;

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0 auto;max-width:1100px;padding:0 18px 40px}
h1{margin:.6em 0 .1em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
nav a{margin-right:1em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.differs td{background:#fff4d6}
figure{margin:1.4em 0}figure img{max-width:100%;height:auto;border:1px solid #e4e4e4}
figcaption{font-size:13px;color:#555}
.verdict{font-weight:600}
.gate-fail{background:#fdecea;border-left:4px solid #c62828;padding:8px 12px}
.gate-pass{background:#e8f5e9;border-left:4px solid #2e7d32;padding:8px 12px}
.pass{background:#c8e6c9}.fail{background:#ffcdd2}.declared{background:#ffe0b2}.skip{background:#eee}
.slower{color:#c62828;font-weight:600}.faster{color:#2e7d32}
small{color:#666}
"#;

/// The whole page.
pub(crate) fn render(r: &Report<'_>) -> String {
    let mut h = String::new();
    let n_bench: usize = r.data.runners.iter().map(|x| x.benchmarks.len()).sum();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"strata-reports {}\">\n<title>strata report</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION")
    );
    let _ = write!(
        h,
        "<header><h1>strata report</h1><p>{} runner(s): {} · {} benchmarks · {} charts</p>\n<nav>",
        r.data.runners.len(),
        escape(&r.data.runner_ids().join(", ")),
        n_bench,
        r.charts.len()
    );
    if r.gate.is_some() {
        h.push_str("<a href=\"#regressions\">Regressions</a>");
    }
    h.push_str(
        "<a href=\"#summary\">Which driver</a><a href=\"#environment\">Runners</a>\
         <a href=\"#charts\">Charts</a><a href=\"#ratios\">Ratios</a><a href=\"#conformance\">Conformance</a>\
         <a href=\"#tables\">Figures</a><a href=\"#benchmarks\">Benchmarks</a></nav></header>\n",
    );
    gate(&mut h, r);
    summary(&mut h, r);
    environment(&mut h, r);
    charts(&mut h, r);
    ratios(&mut h, r);
    conformance(&mut h, r);
    tables(&mut h, r);
    h.push_str(&crate::kernels::html(r.data));
    benchmarks(&mut h, r);
    notes(&mut h, r);
    h.push_str(
        "<footer><small>Charts drawn by strata-reports with plotters; text in the PNGs uses the embedded \
         DejaVu Sans font (Bitstream Vera licence). Every image is also available as SVG.</small></footer>\n</body>\n</html>\n",
    );
    h
}

fn chart_link(r: &Report<'_>, id: &str, text: &str) -> String {
    if r.charts.iter().any(|c| c.id == id) {
        format!("<a href=\"#chart-{}\">{}</a>", escape(id), escape(text))
    } else {
        String::new()
    }
}

fn gate(h: &mut String, r: &Report<'_>) {
    let Some(g) = &r.gate else { return };
    h.push_str("<section id=\"regressions\"><h2>Regressions against the baseline</h2>\n");
    let slower: Vec<_> = g
        .comparisons
        .iter()
        .filter(|c| c.verdict == Verdict::Slower)
        .collect();
    let _ = writeln!(
        h,
        "<p class=\"{}\">{} of {} benchmarks compared with <code>{}</code> are slower beyond {}% (the 95% confidence intervals \
         must be separated by more than the threshold, so noise alone does not count).</p>",
        if slower.is_empty() {
            "gate-pass"
        } else {
            "gate-fail"
        },
        slower.len(),
        g.comparisons.len(),
        escape(&g.baseline.display().to_string()),
        g.threshold_pct
    );
    if !g.losses.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"gate-fail\">{} lost (conformance cells newly failing or skipped, baseline benchmarks missing, \
             failed parts of the run):</p>\n<ul>",
            g.losses.len()
        );
        for l in &g.losses {
            let _ = writeln!(h, "<li>{}</li>", escape(&l.to_string()));
        }
        h.push_str("</ul>\n");
    }
    if !g.comparisons.is_empty() {
        h.push_str(
            "<table><tr><th>benchmark</th><th>runner</th><th>baseline</th><th>current</th><th>median change</th>\
             <th>change the CIs guarantee</th><th>verdict</th></tr>\n",
        );
        for c in &g.comparisons {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{} [{} – {}]</td><td class=\"num\">{} [{} – {}]</td>\
                 <td class=\"num\">{:+.1}%</td><td class=\"num\">{:+.1}%</td><td class=\"{}\">{}</td></tr>",
                escape(&c.id),
                escape(&c.runner),
                human_ns(c.baseline_median),
                human_ns(c.baseline_ci.0),
                human_ns(c.baseline_ci.1),
                human_ns(c.current_median),
                human_ns(c.current_ci.0),
                human_ns(c.current_ci.1),
                c.change_pct,
                c.lower_change_pct,
                c.verdict.as_str(),
                c.verdict.as_str()
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

fn summary(h: &mut String, r: &Report<'_>) {
    h.push_str("<section id=\"summary\"><h2>Which driver, for what, on this host</h2>\n");
    if r.advice.iter().all(|a| a.answers.is_empty()) {
        h.push_str("<p>Not enough measurements to answer (needs container_start, copy_up, commit, union_prepare or disk figures).</p>\n");
    }
    let multi = r.advice.len() > 1;
    for a in r.advice.iter() {
        if multi {
            let _ = writeln!(h, "<h3>{}</h3>", escape(&a.runner));
        }
        let _ = writeln!(
            h,
            "<p class=\"verdict\">{}</p>\n<dl class=\"answers\">",
            escape(&a.verdict)
        );
        for ans in &a.answers {
            let links: Vec<String> = ans
                .charts
                .iter()
                .map(|id| chart_link(r, id, id))
                .filter(|l| !l.is_empty())
                .collect();
            let _ = writeln!(
                h,
                "<dt>{}: <b>{}</b></dt><dd><p>{}</p><p><i>Divergences accepted with it:</i> {}</p><p><i>Figures (median [95% CI]):</i></p><ul>{}</ul><p><small>charts: {}</small></p></dd>",
                escape(&ans.workload),
                escape(ans.pick.as_deref().unwrap_or("no pick")),
                escape(&ans.text),
                escape(&ans.divergences),
                ans.figures
                    .iter()
                    .map(|f| format!("<li>{}</li>", escape(f)))
                    .collect::<String>(),
                links.join(", ")
            );
        }
        h.push_str("</dl>\n");
        let lacks = if a.lacks.is_empty() {
            "nothing: every driver the harness knows ran.".to_string()
        } else {
            a.lacks.join("; ")
        };
        let _ = writeln!(h, "<p><b>What this host lacks</b>: {}</p>", escape(&lacks));
    }
    let dis = crate::advice::disagreements(&r.advice);
    if !dis.is_empty() {
        h.push_str("<p><b>Where the runners disagree</b>:</p><ul>");
        for d in dis {
            let _ = write!(h, "<li>{}</li>", escape(&d));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");
}

fn environment(h: &mut String, r: &Report<'_>) {
    h.push_str("<section id=\"environment\"><h2>Environments</h2>\n");
    let differs: Vec<&str> = r
        .env
        .iter()
        .filter(|e| e.differs)
        .map(|e| e.field.as_str())
        .collect();
    if r.data.runners.len() > 1 {
        if differs.is_empty() {
            h.push_str("<p>The runners report the same environment.</p>\n");
        } else {
            let _ = writeln!(
                h,
                "<p>The runners differ in: <b>{}</b> (highlighted).</p>",
                escape(&differs.join(", "))
            );
        }
    }
    h.push_str("<table><tr><th></th>");
    for id in r.data.runner_ids() {
        let _ = write!(h, "<th>{}</th>", escape(&id));
    }
    h.push_str("</tr>\n");
    for row in &r.env {
        let _ = write!(
            h,
            "<tr{}><th>{}</th>",
            if row.differs {
                " class=\"differs\""
            } else {
                ""
            },
            escape(&row.field)
        );
        for v in &row.values {
            let _ = write!(h, "<td>{}</td>", escape(v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n</section>\n");
}

fn charts(h: &mut String, r: &Report<'_>) {
    h.push_str("<section id=\"charts\"><h2>Charts</h2>\n");
    for c in r.charts {
        let png = c.png.display().to_string();
        let svg = c.svg.display().to_string();
        let _ = writeln!(
            h,
            "<figure id=\"chart-{id}\"><h3>{title}</h3><a href=\"{svg}\"><img src=\"{png}\" width=\"{w}\" height=\"{hh}\" alt=\"{alt}\"></a>\
             <figcaption>{cap} Series: {series}. <a href=\"{svg}\">SVG</a> · <a href=\"{png}\">PNG</a></figcaption></figure>",
            id = escape(&c.id),
            title = escape(&c.title),
            svg = escape(&svg),
            png = escape(&png),
            w = c.width,
            hh = c.height,
            alt = escape(&format!("{}: {}", c.title, c.caption)),
            cap = escape(&c.caption),
            series = escape(&c.series.join(", ")),
        );
    }
    h.push_str("</section>\n");
}

fn ratios(h: &mut String, r: &Report<'_>) {
    h.push_str("<section id=\"ratios\"><h2>Ratios to the floors and peers of each series' own mechanism</h2>\n");
    if r.ratios.is_empty() {
        h.push_str(
            "<p>No floor or peer of a series' mechanism was measured beside it.</p></section>\n",
        );
        return;
    }
    h.push_str("<p>Median divided by the median of a floor (what nothing doing that work can beat) or a peer (another tool doing the same work) of the series' own mechanism, on the same runner at the same parameters (1.00× = as fast).</p>\n");
    let beaten: Vec<_> = r.ratios.iter().filter(|x| x.has_beaten_floor()).collect();
    if !beaten.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"gate-fail\">{} series beat a floor beyond both confidence intervals: the floor is no floor, a bug in the benchmark: {}.</p>",
            beaten.len(),
            escape(
                &beaten
                    .iter()
                    .map(|x| format!("{}/{} {}", x.group, x.driver, x.params))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        );
    }
    h.push_str("<table><tr><th>runner</th><th>group</th><th>series</th><th>params</th><th>median</th><th>ratios</th></tr>\n");
    for row in &r.ratios {
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if row.has_beaten_floor() {
                " class=\"differs\""
            } else {
                ""
            },
            escape(&row.runner),
            escape(&row.group),
            escape(&row.driver),
            escape(&row.params),
            human_ns(row.median_ns),
            escape(&row.text())
        );
    }
    h.push_str("</table>\n</section>\n");
}

fn conformance(h: &mut String, r: &Report<'_>) {
    let Some(t) = crate::tables::matrix(r.data) else {
        return;
    };
    h.push_str("<section id=\"conformance\"><h2>Conformance matrix</h2>\n");
    if let Some(s) = crate::tables::matrix_summary(r.data) {
        let _ = writeln!(
            h,
            "<p>{}. See also {}.</p>",
            escape(&s),
            chart_link(
                r,
                crate::chart::plan::CONFORMANCE_ID,
                "the conformance chart"
            )
        );
    }
    let d = crate::tables::divergences(r.data);
    if !d.rows.is_empty() {
        h.push_str("<h3>Declared divergences, failures and skips</h3>\n<p>Each DECLARED cell is explained by one capability the driver declares (<code>strata drivers</code>).</p>\n");
        h.push_str(&d.html());
    }
    h.push_str("<details><summary>Every case and driver</summary>\n");
    h.push_str(&t.html());
    h.push_str("</details>\n</section>\n");
}

fn tables(h: &mut String, r: &Report<'_>) {
    h.push_str("<section id=\"tables\"><h2>Figures</h2>\n<p>Median [95% confidence interval] per point; parameters in numeric order; sizes and times in human units.</p>\n");
    let multi = r.data.runners.len() > 1;
    for x in &r.data.runners {
        for (title, t) in crate::tables::sweeps(x, false) {
            let _ = writeln!(
                h,
                "<h3>{}{}</h3>",
                escape(&title),
                if multi {
                    format!(" on {}", escape(&x.runner.id))
                } else {
                    String::new()
                }
            );
            h.push_str(&t.html());
        }
    }
    if let Some(t) = crate::tables::phases(r.data) {
        h.push_str("<h3>Phases of a container start</h3>\n");
        h.push_str(&t.html());
    }
    if let Some(t) = crate::tables::disk(r.data) {
        h.push_str("<h3>Disk</h3>\n");
        h.push_str(&t.html());
    }
    h.push_str("</section>\n");
}

fn benchmarks(h: &mut String, r: &Report<'_>) {
    h.push_str("<section id=\"benchmarks\"><h2>Benchmarks</h2>\n<details><summary>Every benchmark (median, 95% CI, samples, kind, where it ran)</summary>\n");
    h.push_str(&crate::tables::every_benchmark(r.data).html());
    h.push_str("</details>\n</section>\n");
}

fn notes(h: &mut String, r: &Report<'_>) {
    if r.data.notes.is_empty() {
        return;
    }
    h.push_str("<section id=\"notes\"><h2>Notes</h2><ul>\n");
    for n in &r.data.notes {
        let _ = writeln!(h, "<li>{}</li>", escape(n));
    }
    h.push_str("</ul></section>\n");
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
