// The Fair-PPO advantage adjustment (docs/fair-ppo.md). The shaped penalty's gradient is PPO's
// with each row's advantage A replaced by
//   A' = weight[c] * A + mix_weight[c] * mix[(r / mix_width) * cells + c]
// where c = cell_ids[r] is the row's fairness cell (its group, group x factor level, or
// agent/world, depending on the fairness notion) and `mix` holds, per segment of mix_width
// rows (one time step of one environment instance) and cell, the mean advantage of the
// partner cell's agents in that segment (the other group's, from the other network), so
// that the penalty's cross-group term reaches the gradient. The kernel writes the adjustment
//   adv_adjust[r] = (weight[c] - 1) * A + mix_weight[c] * mix[...]   if c < cells
//   adv_adjust[r] = 0                                                 otherwise
// and the loss kernel trains on advantages[r] + adv_adjust[r]. mix_width = 0 turns the mix
// term off. A weight of exactly 1 and a mix weight of exactly 0 give an adjustment of exactly
// +-0, so the sum is bit-identical to the advantage: alpha = beta = 0 reproduces PPO.
//
// segment_means: per segment k (rows k * mix_width .. (k + 1) * mix_width) and cell c, the sum
// and count of the advantages of the segment's rows in cell c, summed in row order (one
// invocation per (segment, cell); no atomics). The host turns them into another network's
// `mix`.
// One invocation per row (fair_adjust) or per (segment, cell) (segment_means).

struct FairParams {
    rows: u32,
    cells: u32,
    mix_width: u32,
    segments: u32,
}

struct SegmentSum {
    sum: f32,
    count: u32,
}

@group(0) @binding(0) var<uniform> p: FairParams;
// fair_adjust
@group(0) @binding(1) var<storage, read> advantages: array<f32>;
@group(0) @binding(2) var<storage, read> cell_ids: array<u32>;
// Per cell: (weight, mix weight).
@group(0) @binding(3) var<storage, read> weights: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> mix: array<f32>;
@group(0) @binding(5) var<storage, read_write> adv_adjust: array<f32>;
// segment_means
@group(0) @binding(1) var<storage, read> sm_advantages: array<f32>;
@group(0) @binding(2) var<storage, read> sm_cell_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> sm_out: array<SegmentSum>;

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn fair_adjust(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = linear_index(wg, nwg, lid);
    if r >= p.rows {
        return;
    }
    let c = cell_ids[r];
    var adjust = 0.0;
    if c < p.cells {
        let w = weights[c];
        adjust = (w.x - 1.0) * advantages[r];
        if p.mix_width != 0u {
            adjust = adjust + w.y * mix[(r / p.mix_width) * p.cells + c];
        }
    }
    adv_adjust[r] = adjust;
}

@compute @workgroup_size(64)
fn segment_means(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.segments * p.cells {
        return;
    }
    let k = idx / p.cells;
    let c = idx % p.cells;
    var sum = 0.0;
    var count = 0u;
    let start = k * p.mix_width;
    let end = min(start + p.mix_width, p.rows);
    for (var r = start; r < end; r = r + 1u) {
        if sm_cell_ids[r] == c {
            sum = sum + sm_advantages[r];
            count = count + 1u;
        }
    }
    sm_out[idx] = SegmentSum(sum, count);
}
