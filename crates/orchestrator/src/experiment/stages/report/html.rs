//! `report/index.html` (self-contained) and `report/summary.md`.

use std::fmt::Write;

use super::{
    NO_PUBLISHED, PUBLISHED, PointOut, Published, RenderedFigure, ReportData, crossval,
    split_counts,
};

/// Standard base64 (RFC 4648, with padding) for data URIs.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}", 100.0 * x)).unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

fn published_for(fraction: Option<f64>) -> Option<Published> {
    let f = fraction?;
    PUBLISHED.iter().find(|p| (p.fraction - f).abs() < 1e-9).copied()
}

/// One row of the early-prediction table.
pub struct EarlyRow {
    pub point: String,
    pub skipped: Option<String>,
    pub test_networks: usize,
    /// precision, recall, F1, AUROC (fractions).
    pub aelle: [Option<f64>; 4],
    pub loss: [Option<f64>; 4],
    pub logistic: [Option<f64>; 4],
    pub head: [Option<f64>; 4],
    pub published: Option<Published>,
}

fn metrics_of(p: &PointOut, name: &str) -> [Option<f64>; 4] {
    p.classifier(name).map(|c| [c.precision, c.recall, c.f1, c.auroc]).unwrap_or([None; 4])
}

/// The early-prediction table from `aelle/metrics.json`.
pub fn early_rows(data: &ReportData) -> Vec<EarlyRow> {
    data.aelle
        .evaluations
        .iter()
        .map(|p| {
            let (label, frac) = p.label();
            EarlyRow {
                point: label,
                skipped: p.skipped.clone(),
                test_networks: p.networks.test,
                aelle: metrics_of(p, "aelle_pc1"),
                loss: metrics_of(p, "loss_based"),
                logistic: metrics_of(p, "aelle_logistic"),
                head: metrics_of(p, "aelle_predictor_head"),
                published: if data.published_applies() { published_for(frac) } else { None },
            }
        })
        .collect()
}

fn fmt_pub(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into())
}

/// The Markdown twin of [`html_crossval`].
fn markdown_crossval(s: &mut String, data: &ReportData) {
    let Some(cv) = &data.crossval else {
        let _ = writeln!(
            s,
            "\n## Early prediction, cross-validated\n\nNot computed for this run folder (no `aelle/crossval.json`): rerun `orchestrator aelle`.\n"
        );
        return;
    };
    let _ = writeln!(
        s,
        "\n## Early prediction, cross-validated\n\n{}\n",
        crossval::method_note(cv, data.held_out(), &|v| data.loss_text(v))
    );
    let _ =
        writeln!(s, "### AUROC\n\n{}", crossval::auroc_table(&cv.points, "cv-auroc").markdown());
    let with_published = data.published_applies();
    if with_published {
        let _ = writeln!(s, "### Precision and recall (percent), next to the published numbers\n");
    } else {
        let _ = writeln!(s, "### Precision and recall (percent)\n\n{NO_PUBLISHED}\n");
    }
    let _ =
        writeln!(s, "{}", crossval::precision_recall_table(&cv.points, with_published).markdown());
    let _ = writeln!(
        s,
        "### Paired AUROC differences\n\n{}",
        crossval::comparison_table(&cv.points).markdown()
    );
    let _ = writeln!(
        s,
        "### Within cells (high = below the cell's median final loss)\n\n{}",
        crossval::within_cell_table(&cv.points).markdown()
    );
    let _ = writeln!(s, "### What the numbers say\n");
    let narrow = crossval::narrow_cells(&data.cell_summaries(), data.cell_metric());
    for line in cv.conclusions.iter().chain(&narrow) {
        let _ = writeln!(s, "- {line}");
    }
    for (name, t) in &data.transfers {
        let _ = writeln!(
            s,
            "\n## Transfer: the pre-trained AeLLE of `{name}`\n\nFitted on {} networks of that run, applied here to {} networks with no refitting.\n\n{}",
            t.model_fitted_networks,
            t.networks.len(),
            crossval::transfer_table(Some(cv), t).markdown()
        );
        for line in &t.conclusions {
            let _ = writeln!(s, "- {line}");
        }
    }
    let _ = writeln!(s);
}

/// `summary.md`.
pub fn summary_markdown(
    data: &ReportData,
    figures: &[RenderedFigure],
    config_toml: &str,
) -> String {
    let c = &data.config;
    let mut s = String::new();
    let _ = writeln!(s, "# AeLLE experiment `{}`\n", c.name);
    let _ = writeln!(
        s,
        "{} networks ({} per cell; cells {}), N = {}, p in [{}, {}], {} epochs of Adam (lr {}, batch {}); spectra of {} checkpoints per network (epochs {:?}) from {} fixed driving sequences.\n\n{}\n",
        data.nets.len(),
        c.population.networks_per_architecture,
        c.population.architectures.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "),
        c.population.hidden_size,
        c.population.p_min,
        c.population.p_max,
        c.training.epochs,
        c.training.learning_rate,
        c.training.batch_size,
        c.spectrum_epochs().len(),
        c.spectrum_epochs(),
        c.spectra.driving_sequences,
        data.task_line(),
    );
    let _ = writeln!(s, "## {}\n", data.cell_metric().heading());
    let _ = writeln!(s, "| cell | networks | mean ± std | best | worst | diverged |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for a in data.cell_summaries() {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} ± {:.3} | {:.3} | {:.3} | {} |",
            a.arch, a.networks, a.mean, a.std, a.best, a.worst, a.diverged
        );
    }
    markdown_crossval(&mut s, data);
    let splits = split_counts(data);
    let _ = writeln!(
        s,
        "\n## Single split: AeLLE vs loss-based classifier\n\nThe model behind the embedding figures, on one split (no intervals; quote the cross-validated numbers). \"High performing\" = final {} loss below the median ({}). Every number is on held-out **test networks** ({} test / {} validation / {} train networks); precision, recall, F1 and AUROC in percent (AUROC as a fraction). {}\n",
        data.held_out(),
        data.loss_text(data.aelle.high_performance_threshold),
        splits.get("test").copied().unwrap_or(0),
        splits.get("validation").copied().unwrap_or(0),
        splits.get("train").copied().unwrap_or(0),
        if data.published_applies() {
            "Published: Vogt et al., sequential MNIST, 200 networks of N = 64 per cell."
        } else {
            NO_PUBLISHED
        },
    );
    let with_published = data.published_applies();
    let published_header =
        if with_published { " published AeLLE P / R | published loss P / R |" } else { "" };
    let _ = writeln!(
        s,
        "| point | test networks | AeLLE precision | AeLLE recall | AeLLE F1 | AeLLE AUROC | loss precision | loss recall | loss F1 | loss AUROC |{published_header}"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{}",
        if with_published { " ---: | ---: |" } else { "" }
    );
    for r in early_rows(data) {
        if let Some(why) = &r.skipped {
            let blanks = if with_published { " | | | | | | | | | |" } else { " | | | | | | | |" };
            let _ = writeln!(s, "| {} | {} | skipped: {why}{blanks}", r.point, r.test_networks);
            continue;
        }
        let (pa, pl) = match r.published {
            Some(p) => (
                format!("{:.1} / {:.1}", p.aelle_precision, p.aelle_recall),
                format!("{} / {}", fmt_pub(p.loss_precision), fmt_pub(p.loss_recall)),
            ),
            None => ("n/a".into(), "n/a".into()),
        };
        let published_cells =
            if with_published { format!(" {pa} | {pl} |") } else { String::new() };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{published_cells}",
            r.point,
            r.test_networks,
            pct(r.aelle[0]),
            pct(r.aelle[1]),
            pct(r.aelle[2]),
            num(r.aelle[3]),
            pct(r.loss[0]),
            pct(r.loss[1]),
            pct(r.loss[2]),
            num(r.loss[3]),
        );
    }
    let _ = writeln!(
        s,
        "\nOther AeLLE read-outs of the same latent (precision / recall / F1 / AUROC):\n"
    );
    let _ = writeln!(s, "| point | logistic on latent | predictor head |");
    let _ = writeln!(s, "| --- | --- | --- |");
    for r in early_rows(data) {
        let f = |m: [Option<f64>; 4]| {
            format!("{} / {} / {} / {}", pct(m[0]), pct(m[1]), pct(m[2]), num(m[3]))
        };
        let _ = writeln!(s, "| {} | {} | {} |", r.point, f(r.logistic), f(r.head));
    }
    let _ = writeln!(
        s,
        "\nAeLLE rows: {} used of {} ({} excluded: non-finite spectrum or loss, listed in `aelle/metrics.json`).\n",
        data.aelle.rows_used,
        data.aelle.rows_in,
        data.aelle.excluded.len()
    );
    let _ = writeln!(s, "## Figures\n");
    for f in figures {
        let _ = writeln!(s, "![{0}]({0}.png)\n\n{1} ([SVG]({0}.svg))\n", f.name, f.caption);
    }
    let _ = writeln!(s, "## Timings\n");
    let _ = writeln!(s, "| stage | seconds |");
    let _ = writeln!(s, "| --- | ---: |");
    for t in &data.timings {
        let _ = writeln!(s, "| {} | {:.1} |", t.stage, t.seconds);
    }
    let _ = writeln!(s, "\n## Configuration\n\n```toml\n{config_toml}```");
    s
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1250px;color:#222;padding:0 1em}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}\
figcaption{font-size:14px;color:#444}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}\
.pub{background:#fbf7e8}.note{color:#555;font-size:14px}#status{font-size:13px;color:#666}";

/// `index.html`: self-contained (PNG figures as data URIs, inline CSS and script).
pub fn index_html(data: &ReportData, figures: &[RenderedFigure], config_toml: &str) -> String {
    let c = &data.config;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>AeLLE experiment {}</title><style>{STYLE}</style></head><body>\n",
        esc(&c.name)
    );
    let _ = writeln!(h, "<h1>AeLLE experiment <code>{}</code></h1>", esc(&c.name));
    let _ = writeln!(h, "<p id=\"status\">{} figures embedded.</p>", figures.len());
    let _ = writeln!(
        h,
        "<p>{} networks ({} per cell), N = {}, p ∈ [{}, {}], {} epochs of Adam (lr {}, batch {}). Lyapunov spectra of epochs {:?} from {} fixed driving sequences.</p>\n<p id=\"task\">{}</p>",
        data.nets.len(),
        c.population.networks_per_architecture,
        c.population.hidden_size,
        c.population.p_min,
        c.population.p_max,
        c.training.epochs,
        c.training.learning_rate,
        c.training.batch_size,
        c.spectrum_epochs(),
        c.spectra.driving_sequences,
        esc(&data.task_line())
    );
    let _ = writeln!(
        h,
        "<h2>{}</h2><table id=\"accuracy\"><tr><th>cell</th><th>networks</th><th>mean ± std</th><th>best</th><th>worst</th><th>diverged</th></tr>",
        data.cell_metric().heading()
    );
    html_accuracy_rows(&mut h, data);
    html_crossval(&mut h, data);
    html_early_prediction(&mut h, data);
    html_figures_and_appendix(&mut h, data, figures, config_toml);
    h
}

fn html_accuracy_rows(h: &mut String, data: &ReportData) {
    for a in data.cell_summaries() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.3} ± {:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            esc(&a.arch),
            a.networks,
            a.mean,
            a.std,
            a.best,
            a.worst,
            a.diverged
        );
    }
    let _ = writeln!(h, "</table>");
}

/// The cross-validated early prediction, its controls, the within-cell results and the
/// transfers (the headline sections).
fn html_crossval(h: &mut String, data: &ReportData) {
    let Some(cv) = &data.crossval else {
        let _ = writeln!(
            h,
            "<h2>Early prediction, cross-validated</h2><p class=note>Not computed for this run folder (no <code>aelle/crossval.json</code>): rerun <code>orchestrator aelle</code>.</p>"
        );
        return;
    };
    let _ = writeln!(
        h,
        "<h2>Early prediction, cross-validated</h2><p class=note>{}</p>",
        esc(&crossval::method_note(cv, data.held_out(), &|v| data.loss_text(v)))
    );
    let _ = writeln!(h, "<h3>AUROC</h3>{}", crossval::auroc_table(&cv.points, "cv-auroc").html());
    let with_published = data.published_applies();
    if with_published {
        let _ = writeln!(
            h,
            "<h3>Precision and recall (percent), next to the published numbers</h3><p class=note>Shaded: Vogt et al. (200 networks of N = 64 per cell; their PC1 threshold was tuned on the evaluated networks, ours on inner-validation networks of the training folds).</p>"
        );
    } else {
        let _ = writeln!(
            h,
            "<h3>Precision and recall (percent)</h3><p class=note id=\"no-published\">{}</p>",
            esc(NO_PUBLISHED)
        );
    }
    let _ = writeln!(h, "{}", crossval::precision_recall_table(&cv.points, with_published).html());
    let _ = writeln!(
        h,
        "<h3>Paired AUROC differences</h3>{}",
        crossval::comparison_table(&cv.points).html()
    );
    let _ = writeln!(
        h,
        "<h3>Within cells</h3><p class=note>\"High\" = final {} loss below the median of the network's own cell; pooled = concordance over (high, low) pairs of the same cell, so the architecture itself carries no information.</p>{}",
        data.held_out(),
        crossval::within_cell_table(&cv.points).html()
    );
    let narrow = crossval::narrow_cells(&data.cell_summaries(), data.cell_metric());
    let _ = writeln!(h, "<h3>What the numbers say</h3><ul id=\"conclusions\">");
    for line in cv.conclusions.iter().chain(&narrow) {
        let _ = writeln!(h, "<li>{}</li>", esc(line));
    }
    let _ = writeln!(h, "</ul>");
    for (name, t) in &data.transfers {
        let _ = writeln!(
            h,
            "<h2>Transfer: the pre-trained AeLLE of <code>{}</code></h2><p class=note>Fitted on {} networks of that run and applied here to {} networks with no refitting; labels are this population's (median final loss {}).</p>{}<ul>",
            esc(name),
            t.model_fitted_networks,
            t.networks.len(),
            esc(&data.loss_text(t.label_threshold)),
            crossval::transfer_table(Some(cv), t).html()
        );
        for line in &t.conclusions {
            let _ = writeln!(h, "<li>{}</li>", esc(line));
        }
        let _ = writeln!(h, "</ul>");
    }
}

/// The early-prediction tables: AeLLE against the loss-based classifier next to the published
/// numbers, the other read-outs of the latent, and the AeLLE row counts.
fn html_early_prediction(h: &mut String, data: &ReportData) {
    let splits = split_counts(data);
    let _ = writeln!(
        h,
        "<h2>Single split: AeLLE vs loss-based classifier</h2><p class=\"note\">The model behind the embedding figures, on one train / validation / test split (no intervals; quote the cross-validated numbers above). \"High performing\" = final {} loss below the median ({}). Every number is computed on held-out <b>test networks</b> ({} test, {} validation, {} training networks); the AeLLE classifier is a threshold on PC1 of the latent fitted on training networks, its threshold chosen on validation networks. Percent, AUROC as a fraction. {}</p>",
        data.held_out(),
        data.loss_text(data.aelle.high_performance_threshold),
        splits.get("test").copied().unwrap_or(0),
        splits.get("validation").copied().unwrap_or(0),
        splits.get("train").copied().unwrap_or(0),
        if data.published_applies() {
            "Shaded: the published numbers (Vogt et al.: 200 networks of N = 64 per cell; their threshold was tuned on the evaluated set)."
        } else {
            NO_PUBLISHED
        },
    );
    let with_published = data.published_applies();
    let _ = writeln!(
        h,
        "<table id=\"early\"><tr><th rowspan=2>point</th><th rowspan=2>test networks</th><th colspan=4>AeLLE (PC1)</th><th colspan=4>loss-based</th>{}</tr>",
        if with_published {
            "<th colspan=2 class=pub>published AeLLE</th><th colspan=2 class=pub>published loss-based</th>"
        } else {
            ""
        }
    );
    let _ = writeln!(
        h,
        "<tr><th>precision</th><th>recall</th><th>F1</th><th>AUROC</th><th>precision</th><th>recall</th><th>F1</th><th>AUROC</th>{}</tr>",
        if with_published {
            "<th class=pub>precision</th><th class=pub>recall</th><th class=pub>precision</th><th class=pub>recall</th>"
        } else {
            ""
        }
    );
    for r in early_rows(data) {
        if let Some(why) = &r.skipped {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td colspan={}>skipped: {}</td></tr>",
                esc(&r.point),
                r.test_networks,
                if with_published { 12 } else { 8 },
                esc(why)
            );
            continue;
        }
        let (a, b, cc, d) = match r.published {
            Some(p) => (
                format!("{:.1}", p.aelle_precision),
                format!("{:.1}", p.aelle_recall),
                fmt_pub(p.loss_precision),
                fmt_pub(p.loss_recall),
            ),
            None => ("n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()),
        };
        let published_cells = if with_published {
            format!(
                "<td class=pub>{a}</td><td class=pub>{b}</td><td class=pub>{cc}</td><td class=pub>{d}</td>"
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{published_cells}</tr>",
            esc(&r.point),
            r.test_networks,
            pct(r.aelle[0]),
            pct(r.aelle[1]),
            pct(r.aelle[2]),
            num(r.aelle[3]),
            pct(r.loss[0]),
            pct(r.loss[1]),
            pct(r.loss[2]),
            num(r.loss[3]),
        );
    }
    let _ = writeln!(h, "</table>");
    let _ = writeln!(
        h,
        "<p class=note>Other read-outs of the same latent (precision / recall / F1 / AUROC):</p><table id=\"early-other\"><tr><th>point</th><th>logistic regression on the latent</th><th>predictor head</th></tr>"
    );
    for r in early_rows(data) {
        let f = |m: [Option<f64>; 4]| {
            format!("{} / {} / {} / {}", pct(m[0]), pct(m[1]), pct(m[2]), num(m[3]))
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.point),
            f(r.logistic),
            f(r.head)
        );
    }
    let _ = writeln!(h, "</table>");
    let _ = writeln!(
        h,
        "<p class=note>AeLLE rows: {} used of {} ({} excluded for a non-finite spectrum or loss; listed in <code>aelle/metrics.json</code>). PCA explained variance: {}. t-SNE perplexity: {}.</p>",
        data.aelle.rows_used,
        data.aelle.rows_in,
        data.aelle.excluded.len(),
        data.aelle
            .pca_explained_variance_ratio
            .iter()
            .take(2)
            .map(|v| format!("{:.0} %", v * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        data.aelle.tsne_perplexity.map(|p| format!("{p:.1}")).unwrap_or_else(|| "not run".into())
    );
}

/// The figures, the stage timings, the configuration and the image-load marker.
fn html_figures_and_appendix(
    h: &mut String,
    data: &ReportData,
    figures: &[RenderedFigure],
    config_toml: &str,
) {
    let _ = writeln!(h, "<h2>Figures</h2>");
    for f in figures {
        let _ = writeln!(
            h,
            "<figure id=\"fig-{0}\"><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption>{2} Files: <code>{0}.png</code>, <code>{0}.svg</code>.</figcaption></figure>",
            f.name,
            base64(&f.png),
            esc(&f.caption)
        );
    }
    let _ = writeln!(
        h,
        "<h2>Timings</h2><table id=\"timings\"><tr><th>stage</th><th>seconds</th></tr>"
    );
    for t in &data.timings {
        let _ = writeln!(h, "<tr><td>{}</td><td>{:.1}</td></tr>", esc(&t.stage), t.seconds);
    }
    let _ = writeln!(h, "</table>");
    let _ = writeln!(h, "<h2>Configuration</h2><pre>{}</pre>", esc(config_toml));
    // Marks how many figures decoded (shown to the reader, and read by the browser test).
    let _ = writeln!(
        h,
        "<script>window.addEventListener('load',function(){{var i=document.images,n=0;for(var k=0;k<i.length;k++){{if(i[k].complete&&i[k].naturalWidth>0)n++;}}document.body.setAttribute('data-images-loaded',n+'/'+i.length);document.getElementById('status').textContent=n+' of '+i.length+' figures loaded.';}});</script>"
    );
    let _ = writeln!(h, "</body></html>");
}

#[cfg(test)]
mod tests {
    use super::{base64, published_for};

    #[test]
    fn published_numbers_are_matched_to_fraction_points_only() {
        let p = published_for(Some(0.1)).unwrap();
        assert_eq!((p.aelle_recall, p.aelle_precision), (96.9, 83.6));
        assert_eq!((p.loss_recall, p.loss_precision), (Some(21.4), Some(100.0)));
        let p0 = published_for(Some(0.0)).unwrap();
        assert_eq!((p0.aelle_recall, p0.loss_recall), (92.2, None));
        assert_eq!(published_for(Some(0.5)).unwrap().loss_recall, Some(70.4));
        assert!(published_for(Some(0.3)).is_none());
        assert!(published_for(None).is_none());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
