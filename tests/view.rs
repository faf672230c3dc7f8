//! `fairground view`, driven as a user runs it (the page in a real browser: view_browser.rs).
//! Guarantees:
//!
//! - the page is one self-contained file: no URL, stylesheet or script from anywhere else; its
//!   embedded frames are the start and one per round, and they are the kernel's states as a
//!   re-simulation of the replay gives them (AH: every bush's code, every agent's place,
//!   freezing, action, reward and return, the group returns; HS: the clock, every patient's
//!   status and room, helpers' roles, doctors' rooms and busy flags, treated patients), the last
//!   frame carrying the booked outcome the replay's header records;
//! - the page does not depend on the re-simulation's thread count (byte-identical; HS: the
//!   factual hospital and its twin, split over the threads);
//! - `--gif` writes an animated GIF that the `gif` crate decodes, with the frames and size it
//!   reports; HS has no GIF and says so in one line;
//! - a damaged replay, one whose actions were changed and checksum resealed, and out-of-range
//!   GIF options are refused with one line naming why, exit 1, and nothing is written.

#[path = "common/train_cli.rs"]
mod train_cli;

use fairground_kernel::hs::{IMPAIRMENTS, ROLE_IDLE, Status};
use fairground_trainer::replay::sim::Kernel;
use fairground_trainer::replay::{read, resimulate};
use std::path::Path;
use train_cli::{fairground, scratch_dir, tiny_replay};

/// `fairground view ARGS`: (exit code, stdout, stderr).
fn view(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["view"];
    all.extend_from_slice(args);
    let out = fairground(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The frames a page embeds.
fn embedded(page: &str) -> serde_json::Value {
    let open = "<script id=\"fg-data\" type=\"application/json\">";
    let start = page.find(open).expect("the data script") + open.len();
    let len = page[start..].find("</script>").expect("its end");
    serde_json::from_str(&page[start..start + len]).expect("the data is JSON")
}

/// Every state of a replay's re-simulation, through `f` (round None: the start).
fn states(file: &Path, mut f: impl FnMut(Option<u32>, &Kernel)) {
    let replay = read(file).unwrap();
    let c = resimulate(file, &replay, None, &mut f).unwrap();
    assert!(c.mismatch.is_none());
}

fn self_contained(page: &str) {
    for bad in ["http://", "https://", "<link", "src=", "@import", "url("] {
        assert!(!page.contains(bad), "the page refers elsewhere: {bad}");
    }
}

#[test]
fn an_ah_page_embeds_the_kernels_states_and_the_booked_outcome() {
    let dir = scratch_dir("view-ah");
    let file = tiny_replay(&dir, train_cli::TINY_AH_ONE_THREAD);
    let page = dir.join("episode.html");
    let (code, stdout, stderr) = view(&[file.to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON line");
    let text = std::fs::read_to_string(&page).unwrap();
    assert_eq!(printed["html_bytes"], text.len());
    self_contained(&text);
    let data = embedded(&text);
    let header = read(&file).unwrap().header;
    let frames = data["ah"]["frames"].as_array().unwrap();
    assert_eq!(frames.len() as u32, header.rounds + 1);
    assert_eq!(printed["frames"], frames.len());
    assert_eq!(data["header"]["param_hash"], header.param_hash.as_str());

    let replay = read(&file).unwrap();
    let mut seen = 0;
    states(&file, |round, k| {
        let Kernel::Ah { env, rewards, .. } = k else {
            panic!("AH")
        };
        let i = env.instance(0);
        let n = round.map_or(0, |r| r as usize + 1);
        if n as u32 == header.rounds {
            return; // the next episode's state; checked against the outcome below
        }
        let f = &frames[n];
        let gr: Vec<f32> = serde_json::from_value(f["group_returns"].clone()).unwrap();
        assert_eq!(gr, i.group_returns(), "frame {n}");
        let b: Vec<u16> = serde_json::from_value(f["bushes"].clone()).unwrap();
        assert_eq!(b, i.bush_counts(), "frame {n}");
        assert_eq!(f["step"], i.step_in_episode(), "frame {n}");
        let grid = f["grid"].as_str().unwrap();
        assert_eq!(
            grid.len(),
            (env.params().width * env.params().height) as usize
        );
        assert_eq!(
            grid.bytes().filter(|c| *c != b'.').count(),
            i.bushes().count(),
            "frame {n}: one code per live bush"
        );
        let w = env.params().width;
        for b in i.bushes() {
            let code = [b'r', b'b', b'n'][usize::from(b.colour)];
            let code = if b.ripe {
                code.to_ascii_uppercase()
            } else {
                code
            };
            assert_eq!(
                grid.as_bytes()[(b.y * w + b.x) as usize],
                code,
                "frame {n} {b:?}"
            );
        }
        for a in 0..env.agents() {
            let ag = i.agent(a);
            assert_eq!(f["x"][a], ag.x, "frame {n} agent {a}");
            assert_eq!(f["y"][a], ag.y, "frame {n} agent {a}");
            let frozen = match ag.frozen_turns {
                Some(0) => 0,
                Some(_) => 1,
                None => 2,
            };
            assert_eq!(f["frozen"][a], frozen, "frame {n} agent {a}");
            assert_eq!(f["ret"][a].as_f64().unwrap(), f64::from(ag.episode_return));
            if let Some(r) = round {
                assert_eq!(f["action"][a], replay.round_actions(r as usize)[a]);
                assert_eq!(f["reward"][a].as_f64().unwrap(), f64::from(rewards[a]));
            } else {
                assert_eq!(f["action"][a], 255, "no action before the first round");
            }
        }
        seen += 1;
    });
    assert_eq!(seen, header.rounds, "every frame but the last compared");
    let end = frames.last().unwrap();
    assert_eq!(end["end"], true);
    assert_eq!(end["group_returns"], header.outcome["group_returns"]);
    assert_eq!(end["ret"], header.outcome["returns"]);
}

#[test]
fn an_hs_page_embeds_the_kernels_states_and_the_booked_day() {
    let dir = scratch_dir("view-hs");
    let file = tiny_replay(&dir, train_cli::TINY_HS_TREATING);
    let page = dir.join("day.html");
    let (code, _, stderr) = view(&[file.to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&page).unwrap();
    self_contained(&text);
    let data = embedded(&text);
    let header = read(&file).unwrap().header;
    let frames = data["hs"]["frames"].as_array().unwrap();
    assert_eq!(frames.len() as u32, header.rounds + 1);
    states(&file, |round, k| {
        let Kernel::Hs { env, .. } = k else {
            panic!("HS")
        };
        let i = env.instance(0);
        let n = round.map_or(0, |r| r as usize + 1);
        if n as u32 == header.rounds {
            return;
        }
        let f = &frames[n];
        assert_eq!(f["clock"], i.clock(), "frame {n}");
        let mut treated = [0u32; IMPAIRMENTS];
        for p in 0..i.arrived().min(usize::from(i.stats().patients)) {
            if i.status(p).is_finished() {
                treated[usize::from(i.impairment(p))] += 1;
            }
        }
        let got: Vec<u32> = serde_json::from_value(f["groups"]["treated"].clone()).unwrap();
        assert_eq!(got, treated, "frame {n}");
        let status = f["status"].as_str().unwrap().as_bytes();
        assert_eq!(status.len(), usize::from(i.stats().patients));
        let place = f["place"].as_str().unwrap().as_bytes();
        for (p, &c) in status.iter().enumerate() {
            assert_eq!(
                Status::from_u8(c - b'a'),
                i.status(p),
                "frame {n} patient {p}"
            );
            if let Some(r) = i.patient_room(p) {
                assert_eq!(place[p], b'0' + r as u8, "frame {n} patient {p}");
            } else if p < i.arrived() {
                // In the entrance queue, or on the way somewhere.
                assert!(
                    place[p] == b'0' || place[p] >= b'a',
                    "frame {n} patient {p}"
                );
            }
        }
        let helpers = f["helpers"].as_str().unwrap().as_bytes();
        let params = &env.config().params;
        assert_eq!(helpers.len(), 2 * params.n_helpers());
        for h in 0..params.n_helpers() {
            let hp = i.helper(h);
            assert_eq!(helpers[2 * h], b'0' + hp.role, "frame {n} helper {h}");
            if let (ROLE_IDLE, Some(r)) = (hp.role, hp.room) {
                assert_eq!(helpers[2 * h + 1], b'0' + r as u8, "frame {n} helper {h}");
            }
        }
        let doctors = f["doctors"].as_str().unwrap().as_bytes();
        assert_eq!(doctors.len(), 2 * params.n_doctors());
        for d in 0..params.n_doctors() {
            let doc = i.doctor(d);
            if let Some(r) = doc.room {
                assert_eq!(doctors[2 * d], b'0' + r as u8, "frame {n} doctor {d}");
            }
            let busy = if doc.busy_until > i.clock() {
                b'1'
            } else {
                b'0'
            };
            assert_eq!(doctors[2 * d + 1], busy, "frame {n} doctor {d}");
        }
    });
    let end = frames.last().unwrap();
    assert_eq!(end["end"], true);
    let treated: u32 = serde_json::from_value::<Vec<u32>>(end["groups"]["treated"].clone())
        .unwrap()
        .iter()
        .sum();
    assert_eq!(treated, header.outcome["patients_treated"]);
    assert!(treated > 0, "a day that treats patients");
}

#[test]
fn the_page_does_not_depend_on_threads() {
    // HS: the replay steps the factual hospital and its twin, which two threads split.
    let dir = scratch_dir("view-threads");
    let file = tiny_replay(&dir, train_cli::TINY_HS_TREATING);
    let mut pages = vec![];
    for t in ["1", "2"] {
        let page = dir.join(format!("t{t}.html"));
        let (code, _, stderr) = view(&[
            file.to_str().unwrap(),
            "--out",
            page.to_str().unwrap(),
            "--threads",
            t,
        ]);
        assert_eq!(code, 0, "{stderr}");
        pages.push(std::fs::read(page).unwrap());
    }
    assert!(pages[0] == pages[1], "1 and 2 threads give different pages");
}

#[test]
fn an_ah_gif_decodes_with_the_frames_it_reports() {
    let dir = scratch_dir("view-gif");
    let file = tiny_replay(&dir, train_cli::TINY_AH_ONE_THREAD);
    let gif_path = dir.join("episode.gif");
    let (code, stdout, stderr) = view(&[
        file.to_str().unwrap(),
        "--gif",
        gif_path.to_str().unwrap(),
        "--gif-every",
        "3",
        "--gif-scale",
        "6",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(printed.get("html").is_none(), "no page was asked for");
    let rounds = read(&file).unwrap().header.rounds;
    // Frames 0, 3, 6, ... and always the last.
    let expect = (0..=rounds).filter(|k| k % 3 == 0 || *k == rounds).count();
    assert_eq!(printed["gif_frames"], expect);
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    let mut dec = opts
        .read_info(std::fs::File::open(&gif_path).unwrap())
        .expect("a GIF");
    // The default AH grid, 25 x 15 cells of 6 px, and the 3 px progress bar.
    assert_eq!((dec.width(), dec.height()), (25 * 6, 15 * 6 + 3));
    let mut frames = 0;
    let mut distinct = std::collections::BTreeSet::new();
    while let Some(f) = dec.read_next_frame().unwrap() {
        frames += 1;
        distinct.extend(f.buffer.iter().copied());
    }
    assert_eq!(frames, expect);
    assert!(
        distinct.len() >= 4,
        "bushes, agents and the bar are drawn: {distinct:?}"
    );
}

#[test]
fn hs_has_no_gif_and_says_so() {
    let dir = scratch_dir("view-hs-gif");
    let file = tiny_replay(&dir, train_cli::TINY_HS_TREATING);
    let gif_path = dir.join("day.gif");
    let page = dir.join("day.html");
    let (code, _, stderr) = view(&[
        file.to_str().unwrap(),
        "--gif",
        gif_path.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--gif draws AH grids"), "{stderr}");
    assert!(!gif_path.exists() && !page.exists(), "nothing written");
}

#[test]
fn damaged_tampered_and_bad_options_are_refused_with_nothing_written() {
    let dir = scratch_dir("view-refused");
    let file = tiny_replay(&dir, train_cli::TINY_AH_ONE_THREAD);
    let bytes = std::fs::read(&file).unwrap();
    let page = dir.join("out.html");
    let refused = |f: &Path, extra: &[&str], why: &str| {
        let mut args = vec![f.to_str().unwrap(), "--out", page.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = view(&args);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr} lacks {why:?}");
        assert!(!page.exists(), "nothing written");
    };

    // One flipped byte in the middle.
    let damaged = dir.join("damaged.fgr");
    let mut d = bytes.clone();
    let mid = d.len() / 2;
    d[mid] ^= 0x40;
    std::fs::write(&damaged, &d).unwrap();
    refused(&damaged, &[], "checksum mismatch");

    // Every action of round 3 changed and the file resealed: it reads, and does not
    // re-simulate.
    let mut r = read(&file).unwrap();
    let w = r.header.action_bytes as usize;
    for a in &mut r.actions[3 * w..4 * w] {
        *a = (*a + 1) % fairground_kernel::ah::ACTIONS as u8;
    }
    let tampered = dir.join("tampered.fgr");
    std::fs::write(&tampered, r.to_bytes()).unwrap();
    refused(&tampered, &[], "does not re-simulate (at round 3");

    refused(
        &file,
        &["--gif-scale", "2"],
        "--gif-scale 2 is out of range 3..=32",
    );
    refused(
        &file,
        &["--gif-fps", "0"],
        "--gif-fps 0 is out of range 1..=50",
    );
}

#[test]
fn view_needs_something_to_write() {
    let dir = scratch_dir("view-nothing");
    let missing = dir.join("none.fgr");
    let (code, _, stderr) = view(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2, "a usage error: {stderr}");
    assert!(stderr.contains("--out"), "{stderr}");
}
