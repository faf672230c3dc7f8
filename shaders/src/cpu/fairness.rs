//! Twins of fairness.wgsl: the per-cell affine advantage adjustment and the per-segment,
//! per-cell advantage sums its mix term is built from.

use crate::layout::{FairParams, SegmentSum};

/// fairness.wgsl `fair_adjust`: for a row in cell `c < p.cells`, `(weights[c].0 - 1) *
/// advantages[r]`, plus `weights[c].1 * mix[(r / p.mix_width) * p.cells + c]` when
/// `p.mix_width > 0`; 0 for a row in no cell.
pub fn fair_adjust(
    p: &FairParams,
    advantages: &[f32],
    cell_ids: &[u32],
    weights: &[[f32; 2]],
    mix: &[f32],
    adv_adjust: &mut [f32],
) {
    for r in 0..p.rows as usize {
        let c = cell_ids[r];
        adv_adjust[r] = if c < p.cells {
            let [w, m] = weights[c as usize];
            let mut adjust = (w - 1.0) * advantages[r];
            if p.mix_width != 0 {
                let k = r / p.mix_width as usize;
                adjust += m * mix[k * p.cells as usize + c as usize];
            }
            adjust
        } else {
            0.0
        };
    }
}

/// fairness.wgsl `segment_means`: per segment and cell, the sum (in row order) and count of
/// the advantages of the segment's rows in that cell.
pub fn segment_means(p: &FairParams, advantages: &[f32], cell_ids: &[u32], out: &mut [SegmentSum]) {
    let (w, cells) = (p.mix_width as usize, p.cells as usize);
    for k in 0..p.segments as usize {
        for c in 0..cells {
            let mut s = SegmentSum::default();
            for r in k * w..((k + 1) * w).min(p.rows as usize) {
                if cell_ids[r] == c as u32 {
                    s.sum += advantages[r];
                    s.count += 1;
                }
            }
            out[k * cells + c] = s;
        }
    }
}
