// Row copies between the on-device rollout store and the working buffers of a launch, word for
// word (u32, not f32, so actions and every float bit pattern pass through unchanged):
//   dst[dst_row(r) * width + c] = src[src_row(r) * width + c]      for r < rows, c < width
//   mode 0 (range):   src_row(r) = src_base + r,  dst_row(r) = dst_base + r
//   mode 1 (gather):  src_row(r) = index[r],      dst_row(r) = dst_base + r
//   mode 2 (scatter): src_row(r) = src_base + r,  dst_row(r) = index[r]
// One invocation per word. A scatter's indices must be distinct (the trainer's slots are), so no
// two invocations write the same word and the result does not depend on scheduling.

struct CopyParams {
    rows: u32,
    width: u32,
    src_base: u32,
    dst_base: u32,
    mode: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: CopyParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(64)
fn copy_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = (wg.y * nwg.x + wg.x) * 64u + lid;
    if k >= p.rows * p.width {
        return;
    }
    let r = k / p.width;
    let c = k % p.width;
    var src_row = p.src_base + r;
    var dst_row = p.dst_base + r;
    if p.mode == 1u {
        src_row = index[r];
    } else if p.mode == 2u {
        dst_row = index[r];
    }
    dst[dst_row * p.width + c] = src[src_row * p.width + c];
}
