//! `fairground view`: a replay file as an HTML player and (AH) a GIF; one JSON line on stdout
//! saying what was written.

use crate::cli::ViewArgs;
use fairground_trainer::view::gif::GifOptions;
use fairground_trainer::view::{ViewRequest, view};

pub fn run(args: &ViewArgs) -> anyhow::Result<()> {
    let v = view(&ViewRequest {
        replay: args.replay.clone(),
        out: args.out.clone(),
        gif: args.gif.clone(),
        gif_options: GifOptions {
            every: args.gif_every,
            scale: args.gif_scale,
            fps: args.gif_fps,
        },
        threads: args.threads,
    })?;
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
