// Group reductions in a fixed order (no float atomics): sums, counts and means of a per-sample
// value by group id, and normalisation by those statistics.
//   reduce_partial: one invocation per (split, group) sums its split's rows in ascending order.
//   reduce_final:   one invocation per group sums the partials in split order 0, 1, ...
//   normalize:      values = (values - mean[g]) / (sqrt(variance[g]) + epsilon), in place.
// The value of row r is values[r * value_stride + value_offset]; with use_groups == 0 every row
// is in group 0. mode 0 reduces the value, mode 1 its squared deviation from center[g].mean,
// mode 2 its square (for global gradient norms).
// A reduce_partial or normalize launch may cover a chunk of the rows (see GpuExecutor): its rows
// are the chunk's, and reduce_partial writes the splits split_base, split_base + 1, ... (chunks
// start on split boundaries, so every split's sum is the same as without chunks).

struct ReduceParams {
    rows: u32,
    group_count: u32,
    split_count: u32,
    rows_per_split: u32,
    value_stride: u32,
    value_offset: u32,
    mode: u32,
    use_groups: u32,
    epsilon: f32,
    output_offset: u32,
    split_base: u32,
    pad1: u32,
}

struct GroupPartial {
    sum: f32,
    count: u32,
}

// variance = sum / (count - 1) (unbiased, as torch.std), 0 when count < 2; meaningful in mode 1.
struct GroupStats {
    sum: f32,
    count: u32,
    mean: f32,
    variance: f32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
// reduce_partial
@group(0) @binding(1) var<storage, read> rp_values: array<f32>;
@group(0) @binding(2) var<storage, read> rp_group_ids: array<u32>;
@group(0) @binding(3) var<storage, read> rp_center: array<GroupStats>;
@group(0) @binding(4) var<storage, read_write> rp_partial: array<GroupPartial>;
// reduce_final
@group(0) @binding(1) var<storage, read> rf_partial: array<GroupPartial>;
@group(0) @binding(2) var<storage, read_write> rf_stats: array<GroupStats>;
// normalize
@group(0) @binding(1) var<storage, read_write> nz_values: array<f32>;
@group(0) @binding(2) var<storage, read> nz_group_ids: array<u32>;
@group(0) @binding(3) var<storage, read> nz_mean: array<GroupStats>;
@group(0) @binding(4) var<storage, read> nz_variance: array<GroupStats>;

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn reduce_partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.split_count * p.group_count {
        return;
    }
    let g = idx % p.group_count;
    let split = idx / p.group_count;
    if p.split_base + split >= p.split_count {
        return;
    }
    let start = min(split * p.rows_per_split, p.rows);
    let end = min(start + p.rows_per_split, p.rows);
    var center = 0.0;
    if p.mode == 1u {
        center = rp_center[g].mean;
    }
    var sum = 0.0;
    var count = 0u;
    for (var r = start; r < end; r = r + 1u) {
        if p.use_groups == 0u || rp_group_ids[r] == g {
            let v = rp_values[r * p.value_stride + p.value_offset];
            var term = v;
            if p.mode == 1u {
                term = (v - center) * (v - center);
            } else if p.mode == 2u {
                term = v * v;
            }
            sum = sum + term;
            count = count + 1u;
        }
    }
    rp_partial[(p.split_base + split) * p.group_count + g] = GroupPartial(sum, count);
}

@compute @workgroup_size(64)
fn reduce_final(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_index(wg, nwg, lid);
    if g >= p.group_count {
        return;
    }
    var sum = 0.0;
    var count = 0u;
    for (var s = 0u; s < p.split_count; s = s + 1u) {
        let part = rf_partial[s * p.group_count + g];
        sum = sum + part.sum;
        count = count + part.count;
    }
    var mean = 0.0;
    if count > 0u {
        mean = sum / f32(count);
    }
    var variance = 0.0;
    if count > 1u {
        variance = sum / f32(count - 1u);
    }
    rf_stats[p.output_offset + g] = GroupStats(sum, count, mean, variance);
}

@compute @workgroup_size(64)
fn normalize(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = linear_index(wg, nwg, lid);
    if r >= p.rows {
        return;
    }
    var g = 0u;
    if p.use_groups != 0u {
        g = nz_group_ids[r];
    }
    let i = r * p.value_stride + p.value_offset;
    nz_values[i] = (nz_values[i] - nz_mean[g].mean) / (sqrt(nz_variance[g].variance) + p.epsilon);
}
