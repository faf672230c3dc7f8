//! Twin of rollout.wgsl: row copies (range, gather, scatter) between rollout buffers, word for
//! word.

use crate::layout::{CopyMode, CopyParams};

/// Twin of `copy_rows`.
pub fn copy_rows(p: &CopyParams, src: &[u32], index: &[u32], dst: &mut [u32]) {
    let w = p.width as usize;
    for r in 0..p.rows as usize {
        let (mut from, mut to) = (p.src_base as usize + r, p.dst_base as usize + r);
        if p.mode == CopyMode::Gather as u32 {
            from = index[r] as usize;
        } else if p.mode == CopyMode::Scatter as u32 {
            to = index[r] as usize;
        }
        dst[to * w..(to + 1) * w].copy_from_slice(&src[from * w..(from + 1) * w]);
    }
}
