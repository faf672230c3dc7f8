//! The replay viewer in a real browser: headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs) loads the page `fairground view` wrote, and the test drives it through
//! its own controls over the DevTools protocol. Guarantees:
//!
//! - clicking "step" k times shows frame k, and the page then shows what the kernel's state is
//!   after k rounds of the replay's re-simulation (AH: group returns, bushes; HS: the clock,
//!   patients arrived and treated by impairment, the triage queue);
//! - "last" shows the end, whose numbers are the booked outcome the replay's header records
//!   (what `eval` reported when it was recorded), the scrub bar moves to the frame it is set
//!   to, "play" runs to the end and stops, and hovering an agent shows its last action;
//! - the canvas is really drawn (pixels in the colours of agents, ripe bushes, doctors,
//!   nurses and patients), and a screenshot of each
//!   viewer is taken (`<target tmp>/view-browser/{ah,hs}.png`).
//!
//! Without Chromium each test prints a loud SKIPPED line, and fails where
//! `FAIRGROUND_REQUIRE_BROWSER=1` (set by `.ci/run`). `FAIRGROUND_CHROMIUM` names another
//! binary.

#[path = "common/train_cli.rs"]
mod train_cli;

use fairground_kernel::ah::action;
use fairground_trainer::replay::sim::Kernel;
use fairground_trainer::replay::{read, resimulate};
use headless_chrome::browser::tab::point::Point;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use train_cli::{fairground, ok, scratch_dir, tiny_replay};

/// The browser binary, or None (after the loud skip line) where there is none and none is
/// required.
fn chromium(test: &str) -> Option<PathBuf> {
    let named = std::env::var_os("FAIRGROUND_CHROMIUM").map(PathBuf::from);
    let found = named.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find_map(|dir| {
            [
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ]
            .iter()
            .map(|b| dir.join(b))
            .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        let msg = format!(
            "SKIPPED (no Chromium): {test} — install Debian's `chromium` or set \
             FAIRGROUND_CHROMIUM"
        );
        if std::env::var("FAIRGROUND_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{msg}, and FAIRGROUND_REQUIRE_BROWSER=1");
        }
        // Past the harness's capture: a skip shows in every log, not only on failure.
        let _ = writeln!(std::io::stderr(), "{msg}");
    }
    found
}

fn browser(binary: PathBuf) -> Browser {
    // The flags a sandboxed root session with a closed network needs (no sandbox, no GPU, no
    // background connections).
    let args: Vec<&OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let opts = LaunchOptions::default_builder()
        .path(Some(binary))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1400, 900)))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(args)
        .build()
        .expect("launch options");
    Browser::new(opts).expect("Chromium starts")
}

/// The page of a tiny run's replay of `text`, opened in a tab.
fn open(
    name: &str,
    text: &str,
    binary: PathBuf,
) -> (PathBuf, Browser, std::sync::Arc<Tab>, PathBuf) {
    let dir = scratch_dir(&format!("view-browser-{name}"));
    let file = tiny_replay(&dir, text);
    let page = dir.join(format!("{name}.html"));
    ok(&fairground(&[
        "view",
        file.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]));
    let browser = browser(binary);
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(Duration::from_secs(30));
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    tab.navigate_to(&url)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element("body[data-ready='1']")
        .expect("the viewer starts");
    (file, browser, tab, dir)
}

fn attr(tab: &Tab, selector: &str, name: &str) -> String {
    tab.find_element(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .get_attribute_value(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{selector} has no {name}"))
}

/// A shown number, exactly as the page holds it.
fn value(tab: &Tab, id: &str) -> f64 {
    attr(tab, &format!("#{id}"), "data-value")
        .parse()
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
}

fn frame(tab: &Tab) -> u32 {
    attr(tab, "#frame", "data-frame").parse().unwrap()
}

fn click(tab: &Tab, id: &str, times: u32) {
    let el = tab.find_element(&format!("#{id}")).unwrap();
    for _ in 0..times {
        el.click().unwrap();
    }
}

/// The value of a JavaScript expression (through JSON: the protocol hands objects back by
/// reference).
fn eval(tab: &Tab, js: &str) -> serde_json::Value {
    let text = tab
        .evaluate(&format!("JSON.stringify(({js}) ?? null)"), false)
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .value
        .unwrap_or_else(|| panic!("{js}: no value"));
    serde_json::from_str(text.as_str().expect("a JSON string")).unwrap()
}

/// Pixels of the viewer's canvas within 10 of colour `rgb` in every channel: what the page
/// really drew (an empty grid or hospital has none of the entities' colours).
fn pixels_of(tab: &Tab, rgb: [u8; 3]) -> u64 {
    eval(
        tab,
        &format!(
            "(() => {{ const c = document.getElementById('canvas');
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let n = 0; for (let i = 0; i < d.length; i += 4)
                 if (Math.abs(d[i] - {}) <= 10 && Math.abs(d[i + 1] - {}) <= 10
                     && Math.abs(d[i + 2] - {}) <= 10) n++;
               return n; }})()",
            rgb[0], rgb[1], rgb[2]
        ),
    )
    .as_u64()
    .unwrap()
}

/// "play" at the fastest speed runs to the last frame and stops there.
fn plays_to_the_end(tab: &Tab, last: u32) {
    click(tab, "first", 1);
    eval(tab, "document.getElementById('speed').value = '500'");
    click(tab, "play", 1);
    let start = Instant::now();
    while !(frame(tab) == last && attr(tab, "#play", "data-playing") == "false") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "play never reached the end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Set the scrub bar as a user drags it (its input event).
fn scrub_to(tab: &Tab, k: u32) {
    eval(
        tab,
        &format!(
            "(() => {{ const s = document.getElementById('scrub'); s.value = '{k}';
               s.dispatchEvent(new Event('input')); }})()"
        ),
    );
}

fn screenshot(tab: &Tab, dir: &Path, name: &str) {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a screenshot of a drawn page: {} bytes",
        png.len()
    );
    let out = dir.parent().unwrap().join("view-browser");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// The kernel's state after each round of the replay's re-simulation, as `f` reads it.
fn after_rounds<T>(file: &Path, f: impl Fn(&Kernel) -> T) -> Vec<T> {
    let replay = read(file).unwrap();
    let mut out = vec![];
    let c = resimulate(file, &replay, None, |_, k| out.push(f(k))).unwrap();
    assert!(c.mismatch.is_none());
    out
}

#[test]
fn the_ah_viewer_shows_the_kernels_states_and_the_booked_outcome() {
    let Some(binary) = chromium("the_ah_viewer_shows_the_kernels_states_and_the_booked_outcome")
    else {
        return;
    };
    let (file, _browser, tab, dir) = open("ah", train_cli::TINY_AH_ONE_THREAD, binary);
    let header = read(&file).unwrap().header;
    // Frame n: group returns, bushes, agent 0's place and the action it took to get there.
    let states = after_rounds(&file, |k| {
        let Kernel::Ah { env, .. } = k else {
            panic!("AH")
        };
        let i = env.instance(0);
        let a = i.agent(0);
        (i.group_returns(), i.bush_counts(), (a.x, a.y))
    });
    let replay = read(&file).unwrap();
    assert_eq!(frame(&tab), 0);

    let k = 5;
    click(&tab, "step", k);
    assert_eq!(frame(&tab), k);
    let (gr, bushes, (x, y)) = states[k as usize];
    for (g, want) in gr.iter().enumerate() {
        assert_eq!(
            value(&tab, &format!("gr-{g}")),
            f64::from(*want),
            "group {g}"
        );
    }
    assert_eq!(value(&tab, "bush-red"), f64::from(bushes[0]));
    assert_eq!(value(&tab, "bush-blue"), f64::from(bushes[1]));
    assert_eq!(value(&tab, "bush-none"), f64::from(bushes[2]));
    assert_eq!(value(&tab, "ep-step"), f64::from(k));

    // Hover agent 0: its last action is the one the replay recorded for round k - 1.
    let rect = eval(
        &tab,
        "(() => { const c = document.getElementById('canvas'); const r = c.getBoundingClientRect();
           return [r.left, r.top, r.width / c.width, c.width]; })()",
    );
    let r: Vec<f64> = serde_json::from_value(rect).unwrap();
    let cell = r[3] / f64::from(25) * r[2];
    tab.move_mouse_to_point(Point {
        x: r[0] + (f64::from(x) + 0.5) * cell,
        y: r[1] + (f64::from(y) + 0.5) * cell,
    })
    .unwrap();
    let tip = tab
        .find_element("#tooltip")
        .unwrap()
        .get_inner_text()
        .unwrap();
    let act = action::NAMES[replay.round_actions(k as usize - 1)[0] as usize];
    assert!(tip.starts_with("agent 0"), "{tip}");
    assert!(
        tip.contains(&format!("last action: {act}")),
        "{tip} lacks {act}"
    );

    click(&tab, "back", 2);
    assert_eq!(frame(&tab), k - 2);
    scrub_to(&tab, 3);
    assert_eq!(frame(&tab), 3);
    assert_eq!(value(&tab, "gr-0"), f64::from(states[3].0[0]));

    click(&tab, "last", 1);
    assert_eq!(frame(&tab), header.rounds);
    let booked: Vec<f64> = serde_json::from_value(header.outcome["group_returns"].clone()).unwrap();
    for (g, want) in booked.iter().enumerate() {
        assert_eq!(value(&tab, &format!("gr-{g}")), *want, "booked group {g}");
    }
    assert!(
        !tab.find_element("#banner")
            .unwrap()
            .get_inner_text()
            .unwrap()
            .is_empty()
    );
    plays_to_the_end(&tab, header.rounds);
    // Agents of both preferences and ripe bushes of both colours (viewer.html's fills).
    for (what, rgb) in [
        ("red-preferring agents", [0x7a, 0x00, 0x10]),
        ("blue-preferring agents", [0x0a, 0x1e, 0x5c]),
        ("ripe red bushes", [0xc0, 0x39, 0x2b]),
        ("ripe blue bushes", [0x1f, 0x5f, 0xbf]),
    ] {
        assert!(pixels_of(&tab, rgb) > 200, "{what} are drawn");
    }
    screenshot(&tab, &dir, "ah");
}

#[test]
fn the_hs_viewer_shows_the_kernels_states_and_the_booked_day() {
    let Some(binary) = chromium("the_hs_viewer_shows_the_kernels_states_and_the_booked_day") else {
        return;
    };
    let (file, _browser, tab, dir) = open("hs", train_cli::TINY_HS_TREATING, binary);
    let header = read(&file).unwrap().header;
    let states = after_rounds(&file, |k| {
        let Kernel::Hs { env, .. } = k else {
            panic!("HS")
        };
        let i = env.instance(0);
        let n = usize::from(i.stats().patients);
        let (mut arrived, mut treated) = ([0u32; 3], [0u32; 3]);
        for p in 0..i.arrived().min(n) {
            let g = usize::from(i.impairment(p));
            arrived[g] += 1;
            if i.status(p).is_finished() {
                treated[g] += 1;
            }
        }
        (i.clock(), arrived, treated, i.triage_queue())
    });
    assert!(
        header.rounds >= 8,
        "a day of several decisions: {}",
        header.rounds
    );

    let k = 7;
    click(&tab, "step", k);
    assert_eq!(frame(&tab), k);
    let (clock, arrived, treated, triage) = states[k as usize];
    assert_eq!(value(&tab, "clock"), f64::from(clock));
    for g in 0..3 {
        assert_eq!(
            value(&tab, &format!("arrived-{g}")),
            f64::from(arrived[g]),
            "group {g}"
        );
        assert_eq!(
            value(&tab, &format!("treated-{g}")),
            f64::from(treated[g]),
            "group {g}"
        );
        assert_eq!(
            value(&tab, &format!("queue-triage-{g}")),
            f64::from(triage[g])
        );
    }

    // The end: the day's booked statistics, treated patients and mean ledgers by impairment.
    click(&tab, "last", 1);
    assert_eq!(frame(&tab), header.rounds);
    let o = &header.outcome;
    let mut all = 0.0;
    for g in 0..3 {
        let finished: Vec<f64> = serde_json::from_value(o["finished"][g].clone()).unwrap();
        let ledger: Vec<f64> = serde_json::from_value(o["ledger_finished"][g].clone()).unwrap();
        let n: f64 = finished.iter().sum();
        all += n;
        assert_eq!(value(&tab, &format!("treated-{g}")), n, "group {g}");
        if n > 0.0 {
            let sum = ledger.iter().fold(0.0, |s, v| s + v);
            assert_eq!(value(&tab, &format!("ledger-{g}")), sum / n, "group {g}");
        }
    }
    assert_eq!(all, o["patients_treated"].as_f64().unwrap());
    assert!(
        all > 0.0,
        "the day treated patients (so the ledger means were compared)"
    );
    plays_to_the_end(&tab, header.rounds);
    // Ward doctors, nurses and unimpaired patients (viewer.html's colours).
    for (what, rgb) in [
        ("ward doctors", [0x6a, 0x1b, 0x9a]),
        ("nurses", [0x00, 0x89, 0x7b]),
        ("unimpaired patients", [0x2e, 0x7d, 0x32]),
    ] {
        assert!(pixels_of(&tab, rgb) > 20, "{what} are drawn");
    }
    screenshot(&tab, &dir, "hs");
}
