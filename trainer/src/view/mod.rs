//! `fairground view`: a recorded replay as one self-contained HTML page (canvas, controls and
//! the frames embedded; no network), and for AH an animated GIF.
//!
//! The frames are not taken on trust from the file: the replay is re-simulated and every state
//! digest verified ([`crate::replay::resimulate`]) while the frames are read off the kernel, so
//! a page is only ever written for a replay that checks. A damaged file, one of another
//! version, or one that does not re-simulate is refused in one line and nothing is written.

pub mod ah;
pub mod gif;
pub mod hs;

use crate::common::html_escape;
use crate::error::TrainError;
use crate::io::write_atomic;
use crate::replay::file::{Header, Replay};
use crate::replay::{read, resimulate};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The viewer page: markup, style and script; the frames go where `__FG_DATA__` stands.
const PAGE: &str = include_str!("viewer.html");

/// What `fairground view FILE.fgr` was asked to write.
#[derive(Clone, Debug)]
pub struct ViewRequest {
    pub replay: PathBuf,
    /// The HTML page.
    pub out: Option<PathBuf>,
    /// The GIF (AH only).
    pub gif: Option<PathBuf>,
    pub gif_options: gif::GifOptions,
    /// Worker threads of the re-simulation [default: the recording's].
    pub threads: Option<u32>,
}

/// What a view wrote (one JSON line on stdout).
#[derive(Clone, Debug, Serialize)]
pub struct Viewed {
    pub replay: String,
    pub env: String,
    /// Frames: the start and one per round.
    pub frames: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gif: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gif_frames: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gif_bytes: Option<usize>,
}

/// A replay's frames, by environment.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frames {
    Ah(ah::AhFrames),
    Hs(hs::HsFrames),
}

impl Frames {
    pub fn len(&self) -> usize {
        match self {
            Frames::Ah(f) => f.frames.len(),
            Frames::Hs(f) => f.frames.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn view_error(path: &Path, why: impl Into<String>) -> TrainError {
    TrainError::Replay {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Re-simulate a replay read from `path` with every digest verified, and return its frames.
pub fn frames(path: &Path, replay: &Replay, threads: Option<u32>) -> Result<Frames, TrainError> {
    let mut frames = match replay.header.env.as_str() {
        "ah" => Frames::Ah(ah::AhFrames::new()),
        _ => Frames::Hs(hs::HsFrames::new()),
    };
    let checked = resimulate(path, replay, threads, |round, kernel| match &mut frames {
        Frames::Ah(f) => f.push(kernel, round.map(|r| replay.round_actions(r as usize))),
        Frames::Hs(f) => f.push(kernel, round.is_none()),
    })?;
    if let Some(m) = checked.mismatch {
        let at = m
            .round
            .map_or("its start state".to_string(), |r| format!("round {r}"));
        return Err(view_error(
            path,
            format!(
                "does not re-simulate (at {at}: {}); nothing written (see `fairground replay --check`)",
                m.what
            ),
        ));
    }
    Ok(frames)
}

/// What the page shows of the replay's identity.
#[derive(Serialize)]
struct PageHeader<'a> {
    file: String,
    env: &'a str,
    run_dir: &'a str,
    config_sha256: &'a str,
    code_version: &'a str,
    checkpoint_iteration: u32,
    param_hash: &'a str,
    seed: u64,
    episode: u32,
    policy: &'a str,
    rounds: u32,
    outcome: &'a serde_json::Value,
}

impl<'a> PageHeader<'a> {
    fn new(file: &Path, h: &'a Header) -> Self {
        Self {
            file: file
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            env: &h.env,
            run_dir: &h.run_dir,
            config_sha256: &h.config_sha256,
            code_version: &h.code_version,
            checkpoint_iteration: h.checkpoint_iteration,
            param_hash: &h.param_hash,
            seed: h.seed,
            episode: h.episode,
            policy: &h.policy,
            rounds: h.rounds,
            outcome: &h.outcome,
        }
    }
}

/// The self-contained page of a replay's frames.
pub fn page(file: &Path, header: &Header, frames: &Frames) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        header: PageHeader<'a>,
        #[serde(flatten)]
        frames: &'a Frames,
    }
    let json = serde_json::to_string(&Data {
        header: PageHeader::new(file, header),
        frames,
    })
    .expect("frames serialise");
    // Inside <script>, `<` could close the element (a run path with `</script>` in it): in
    // JSON it only occurs inside strings, where `\u003c` means the same.
    let json = json.replace('<', "\\u003c");
    let title = format!(
        "fairground replay: {} {} (checkpoint {}, episode {})",
        header.env.to_uppercase(),
        PageHeader::new(file, header).file,
        header.checkpoint_iteration,
        header.episode
    );
    // Split the constant template once, so nothing substituted is searched again (a file
    // named `__FG_DATA__` stays a name).
    let (head, rest) = PAGE.split_once("__FG_TITLE__").expect("title placeholder");
    let (middle, tail) = rest.split_once("__FG_DATA__").expect("data placeholder");
    format!("{head}{}{middle}{json}{tail}", html_escape(&title))
}

/// `fairground view FILE.fgr [--out PAGE.html] [--gif OUT.gif]`.
pub fn view(req: &ViewRequest) -> Result<Viewed, TrainError> {
    if req.out.is_none() && req.gif.is_none() {
        return Err(view_error(
            &req.replay,
            "nothing to write: give --out PAGE.html, --gif OUT.gif or both",
        ));
    }
    req.gif_options
        .validate()
        .map_err(|why| view_error(&req.replay, why))?;
    // Refuse before the (long) re-simulation what can be refused from the header alone.
    let replay = read(&req.replay)?;
    let header = &replay.header;
    if req.gif.is_some() && header.env != "ah" {
        return Err(view_error(
            &req.replay,
            format!(
                "--gif draws AH grids; this is an {} replay (use --out PAGE.html)",
                header.env.to_uppercase()
            ),
        ));
    }
    let frames = frames(&req.replay, &replay, req.threads)?;
    let mut viewed = Viewed {
        replay: req.replay.display().to_string(),
        env: replay.header.env.clone(),
        frames: frames.len() as u32,
        html: None,
        html_bytes: None,
        gif: None,
        gif_frames: None,
        gif_bytes: None,
    };
    // Both outputs are made in memory first and written atomically; if the second write
    // fails, the first file is removed: an error leaves nothing behind.
    let html = req
        .out
        .as_ref()
        .map(|_| page(&req.replay, &replay.header, &frames));
    let gif = match (&req.gif, &frames) {
        (Some(_), Frames::Ah(f)) => Some(gif::encode(f, &req.gif_options)),
        _ => None,
    };
    if let (Some(path), Some(text)) = (&req.out, &html) {
        write_atomic(path, text.as_bytes())?;
        viewed.html = Some(path.display().to_string());
        viewed.html_bytes = Some(text.len());
    }
    if let (Some(path), Some((bytes, n))) = (&req.gif, &gif) {
        if let Err(e) = write_atomic(path, bytes) {
            if let Some(page) = &viewed.html {
                let _ = std::fs::remove_file(page);
            }
            return Err(e);
        }
        viewed.gif = Some(path.display().to_string());
        viewed.gif_frames = Some(*n);
        viewed.gif_bytes = Some(bytes.len());
    }
    Ok(viewed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(run_dir: &str) -> Header {
        Header {
            env: "ah".into(),
            run_dir: run_dir.into(),
            config_sha256: "0".repeat(64),
            code_version: "test".into(),
            checkpoint_iteration: 1,
            param_hash: "0".repeat(16),
            seed: 0,
            episode: 0,
            policy: "stochastic".into(),
            threads: 1,
            rounds: 0,
            action_bytes: 0,
            columns: vec![],
            start_digests: vec![],
            start: serde_json::Value::Null,
            outcome: serde_json::json!({"note": "</script><!--"}),
        }
    }

    #[test]
    fn nothing_in_a_replay_can_close_the_data_script_or_move_the_placeholders() {
        let frames = Frames::Ah(ah::AhFrames::new());
        let page = page(
            Path::new("/tmp/__FG_DATA__ __FG_TITLE__.fgr"),
            &header("runs/</script><b>x</b>"),
            &frames,
        );
        let open = "<script id=\"fg-data\" type=\"application/json\">";
        let start = page.find(open).unwrap() + open.len();
        let len = page[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&page[start..start + len]).unwrap();
        assert_eq!(data["header"]["run_dir"], "runs/</script><b>x</b>");
        assert_eq!(data["header"]["outcome"]["note"], "</script><!--");
        assert_eq!(data["header"]["file"], "__FG_DATA__ __FG_TITLE__.fgr");
        assert!(!page[start..start + len].contains('<'));
        let title = &page[page.find("<title>").unwrap()..page.find("</title>").unwrap()];
        assert!(title.contains("__FG_DATA__ __FG_TITLE__.fgr"), "{title}");
        // The data landed in the data script, not in the title: the script's id and the one
        // getElementById are the only mentions of it.
        assert_eq!(page.matches("fg-data").count(), 2);
    }
}
