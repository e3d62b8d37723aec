//! The report as a user sees it: headless Chromium renders `report/index.html` of a tiny run
//! to a PNG (must not be blank) and dumps the DOM after the page's own script counted the
//! figures that decoded (`data-images-loaded="5/5"`).
//!
//! Needs Debian's `chromium` (scripts/ci-setup.sh installs it). Without it the test is skipped
//! with a message, unless CI=true, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn chromium_or_skip() -> Option<PathBuf> {
    match find_on_path(&["chromium", "chromium-browser"]) {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("chromium is not installed but CI=true: run scripts/ci-setup.sh in .ci/run")
        }
        None => {
            skip_notice(
                "SKIP report_browser: no chromium on PATH (apt-get install -y chromium, or scripts/ci-setup.sh)",
            );
            None
        }
    }
}

fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(std::string::ToString::to_string)
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

#[test]
fn report_renders_in_headless_chromium_with_every_figure_loaded() {
    let Some(chromium) = chromium_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    let out = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["run", "--preset", "tiny", "--run-dir", root.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = root.join("report/index.html");
    let url = format!("file://{}", index.canonicalize().unwrap().display());

    // 1. The DOM after the page's load handler ran.
    let out = Command::new(&chromium)
        .args(chromium_args(&dir.path().join("profile-dom")))
        .args(["--virtual-time-budget=5000", "--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-images-loaded=\"5/5\""),
        "not every figure decoded; DOM head: {}",
        &dom[..dom.len().min(600)]
    );
    assert!(dom.contains("5 of 5 figures loaded."));

    // 2. A screenshot that is not blank.
    let shot = dir.path().join("shot.png");
    let out = Command::new(&chromium)
        .args(chromium_args(&dir.path().join("profile-shot")))
        .args(["--window-size=1280,9000", &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 9000));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let non_white = pixels.iter().filter(|p| p[..3].iter().any(|&c| c < 235)).count();
    let colourful = pixels
        .iter()
        .filter(|p| {
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            (r - g).abs().max((g - b).abs()).max((r - b).abs()) > 60
        })
        .count();
    let total = pixels.len();
    // Text, tables and figures: a blank or error page has (almost) only white or grey pixels.
    assert!(non_white * 50 > total, "only {non_white} of {total} pixels are not white");
    assert!(colourful > 2000, "only {colourful} coloured pixels: the figures did not render");
}

/// Prints past libtest's output capture (which takes `eprintln!`), so a skip is visible.
fn skip_notice(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}
