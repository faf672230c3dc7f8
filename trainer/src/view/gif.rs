//! The AH episode as an animated GIF (for papers and READMEs), drawn from the same frames as
//! the page and encoded with the `gif` crate: a fixed 16-colour palette, one indexed frame per
//! kept state, looping forever.
//!
//! Drawing: bushes fill their cell (pale unripe, deep ripe; red, blue, grey for uncoloured),
//! agents are squares in their preference colour, grey inside when frozen, with a white centre
//! when sensitive; a bar along the bottom shows how far into the episode the frame is.

use super::ah::AhFrames;

/// How the GIF is drawn (`--gif-every`, `--gif-scale`, `--gif-fps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GifOptions {
    /// Keep every n-th frame (and always the last).
    pub every: u32,
    /// Pixels per grid cell.
    pub scale: u32,
    /// Frames per second.
    pub fps: u32,
}

impl Default for GifOptions {
    fn default() -> Self {
        Self {
            every: 1,
            scale: 8,
            fps: 20,
        }
    }
}

impl GifOptions {
    pub fn validate(&self) -> Result<(), String> {
        let range = |name: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} {v} is out of range {lo}..={hi}"))
            }
        };
        range("--gif-every", self.every, 1, 100_000)?;
        range("--gif-scale", self.scale, 3, 32)?;
        range("--gif-fps", self.fps, 1, 50)
    }
}

const BACKGROUND: u8 = 0;
const BUSH: [[u8; 2]; 3] = [[1, 2], [3, 4], [5, 6]];
const AGENT: [u8; 2] = [7, 8];
const FROZEN: u8 = 9;
const MARK: u8 = 10;
const BAR: u8 = 11;
const BAR_BACK: u8 = 12;

#[rustfmt::skip]
const PALETTE: [u8; 16 * 3] = [
    0xf4, 0xf1, 0xe8, // background
    0xf0, 0xb4, 0xa8, 0xc0, 0x39, 0x2b, // red bush: unripe, ripe
    0xae, 0xc6, 0xef, 0x1f, 0x5f, 0xbf, // blue bush
    0xd6, 0xd6, 0xd6, 0x80, 0x80, 0x80, // uncoloured bush
    0x7a, 0x00, 0x10, 0x0a, 0x1e, 0x5c, // agents: red, blue preference
    0xa8, 0xa8, 0xa8, // frozen agent's inside
    0xff, 0xff, 0xff, // sensitive mark
    0x44, 0x44, 0x44, 0xdd, 0xd8, 0xcc, // progress bar, its track
    0, 0, 0, 0, 0, 0, 0, 0, 0, // unused
];

/// Height of the progress bar in pixels.
const BAR_PX: u32 = 3;

/// The GIF's bytes and how many frames it holds.
pub fn encode(f: &AhFrames, o: &GifOptions) -> (Vec<u8>, u32) {
    let s = o.scale;
    let (w, h) = (f.width * s, f.height * s + BAR_PX);
    let mut out = Vec::new();
    let mut kept = 0;
    {
        let mut enc = gif::Encoder::new(&mut out, w as u16, h as u16, &PALETTE).expect("gif");
        enc.set_repeat(gif::Repeat::Infinite).expect("gif");
        let last = f.frames.len().saturating_sub(1);
        let mut px = vec![BACKGROUND; (w * h) as usize];
        for k in 0..f.frames.len() {
            if k % o.every as usize != 0 && k != last {
                continue;
            }
            draw(f, k, s, w, &mut px);
            // Indices into the global palette, borrowed: no copy of the raster per frame.
            let mut g = gif::Frame {
                width: w as u16,
                height: h as u16,
                buffer: std::borrow::Cow::Borrowed(&px),
                ..gif::Frame::default()
            };
            // Hundredths of a second; the last frame holds for a second.
            g.delay = if k == last {
                100
            } else {
                (100 / o.fps).max(2) as u16
            };
            enc.write_frame(&g).expect("gif frame into memory");
            kept += 1;
        }
    }
    (out, kept)
}

fn fill(px: &mut [u8], w: u32, x0: u32, y0: u32, side_x: u32, side_y: u32, c: u8) {
    for y in y0..y0 + side_y {
        let row = (y * w) as usize;
        px[row + x0 as usize..row + (x0 + side_x) as usize].fill(c);
    }
}

fn draw(f: &AhFrames, k: usize, s: u32, w: u32, px: &mut [u8]) {
    let frame = &f.frames[k];
    px.fill(BACKGROUND);
    for (i, &c) in frame.grid.as_bytes().iter().enumerate() {
        let colour = match c.to_ascii_lowercase() {
            b'r' => 0,
            b'b' => 1,
            b'n' => 2,
            _ => continue,
        };
        let ripe = usize::from(c.is_ascii_uppercase());
        let (x, y) = (i as u32 % f.width, i as u32 / f.width);
        fill(px, w, x * s, y * s, s, s, BUSH[colour][ripe]);
    }
    for a in 0..f.agents as usize {
        let (x, y) = (u32::from(frame.x[a]) * s, u32::from(frame.y[a]) * s);
        let body = AGENT[usize::from(f.pref[a].min(1))];
        fill(px, w, x + 1, y + 1, s - 2, s - 2, body);
        if frame.frozen[a] != 0 && s >= 5 {
            fill(px, w, x + 2, y + 2, s - 4, s - 4, FROZEN);
        }
        if f.sensitive[a] != 0 {
            let m = (s / 3).max(1);
            let o = (s - m) / 2;
            fill(px, w, x + o, y + o, m, m, MARK);
        }
    }
    // Progress through the episode.
    let total = (f.frames.len() - 1).max(1) as u32;
    let y0 = f.height * s;
    fill(px, w, 0, y0, w, BAR_PX, BAR_BACK);
    let done = (w as u64 * k as u64 / u64::from(total)) as u32;
    fill(px, w, 0, y0, done.min(w), BAR_PX, BAR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_name_the_flag() {
        let bad = GifOptions {
            scale: 2,
            ..GifOptions::default()
        };
        assert_eq!(
            bad.validate().unwrap_err(),
            "--gif-scale 2 is out of range 3..=32"
        );
        let bad = GifOptions {
            every: 0,
            ..GifOptions::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("--gif-every 0"));
        assert!(GifOptions::default().validate().is_ok());
    }
}
