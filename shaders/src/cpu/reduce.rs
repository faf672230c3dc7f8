//! Twins of group_reduce.wgsl: fixed-order per-group reductions (a fixed number of row splits,
//! then one pass over the splits), and per-group standardisation in place.

use crate::layout::{GroupPartial, GroupStats, ReduceMode, ReduceParams};

/// Twin of `reduce_partial`.
pub fn reduce_partial(
    p: &ReduceParams,
    values: &[f32],
    group_ids: &[u32],
    center: &[GroupStats],
    partial: &mut [GroupPartial],
) {
    let groups = p.group_count as usize;
    let rows = p.rows as usize;
    let base = p.split_base as usize;
    for split in 0..(p.split_count as usize).saturating_sub(base) {
        let start = (split * p.rows_per_split as usize).min(rows);
        let end = (start + p.rows_per_split as usize).min(rows);
        for g in 0..groups {
            let c = if p.mode == ReduceMode::SquaredDeviation as u32 {
                center[g].mean
            } else {
                0.0
            };
            let (mut sum, mut count) = (0.0f32, 0u32);
            for r in start..end {
                if p.use_groups == 0 || group_ids[r] as usize == g {
                    let v = values[r * p.value_stride as usize + p.value_offset as usize];
                    sum += match p.mode {
                        1 => (v - c) * (v - c),
                        2 => v * v,
                        _ => v,
                    };
                    count += 1;
                }
            }
            partial[(base + split) * groups + g] = GroupPartial { sum, count };
        }
    }
}

/// Twin of `reduce_final`.
pub fn reduce_final(p: &ReduceParams, partial: &[GroupPartial], stats: &mut [GroupStats]) {
    let groups = p.group_count as usize;
    for g in 0..groups {
        let (mut sum, mut count) = (0.0f32, 0u32);
        for s in 0..p.split_count as usize {
            let part = partial[s * groups + g];
            sum += part.sum;
            count += part.count;
        }
        let mean = if count > 0 { sum / count as f32 } else { 0.0 };
        let variance = if count > 1 {
            sum / (count - 1) as f32
        } else {
            0.0
        };
        stats[p.output_offset as usize + g] = GroupStats {
            sum,
            count,
            mean,
            variance,
        };
    }
}

/// Twin of `normalize`.
pub fn normalize(
    p: &ReduceParams,
    values: &mut [f32],
    group_ids: &[u32],
    mean: &[GroupStats],
    variance: &[GroupStats],
) {
    for r in 0..p.rows as usize {
        let g = if p.use_groups != 0 {
            group_ids[r] as usize
        } else {
            0
        };
        let i = r * p.value_stride as usize + p.value_offset as usize;
        values[i] = (values[i] - mean[g].mean) / (variance[g].variance.sqrt() + p.epsilon);
    }
}
