// The Fair-PPO advantage adjustment (docs/fair-ppo.md): the shaped penalty's gradient is PPO's
// with each row's advantage multiplied by the weight of the fairness cell the row belongs to
// (its group, group x factor level, or agent/world pair, depending on the fairness notion).
// The per-cell statistics it starts from are group reductions (group_reduce.wgsl, cell ids as
// group ids) of the stored rewards and values; the host turns their few numbers into the
// weights (a handful of scalars per update) and this kernel applies them per row:
//   adv_adjust[r] = (weights[cell_ids[r]] - 1) * advantages[r]     if cell_ids[r] < cells
//   adv_adjust[r] = 0                                                otherwise
// The loss kernel trains on advantages[r] + adv_adjust[r] = weight * advantage. A weight of
// exactly 1 gives an adjustment of exactly +-0, so the sum is bit-identical to the advantage:
// alpha = beta = 0 reproduces PPO. One invocation per row, no reductions, no atomics.

struct FairParams {
    rows: u32,
    cells: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: FairParams;
@group(0) @binding(1) var<storage, read> advantages: array<f32>;
@group(0) @binding(2) var<storage, read> cell_ids: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> adv_adjust: array<f32>;

@compute @workgroup_size(64)
fn fair_adjust(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = (wg.y * nwg.x + wg.x) * 64u + lid;
    if r >= p.rows {
        return;
    }
    let c = cell_ids[r];
    var adjust = 0.0;
    if c < p.cells {
        adjust = (weights[c] - 1.0) * advantages[r];
    }
    adv_adjust[r] = adjust;
}
