// Adam with bias correction and global gradient-norm clipping (torch.optim.Adam and
// torch.nn.utils.clip_grad_norm_ semantics).
//   adam_begin (one invocation): step += 1, beta1_pow *= beta1, beta2_pow *= beta2. The powers
//     are running f32 products, so several steps can be recorded in one submission.
//   adam_update (one per parameter): g = grad * min(1, max_grad_norm / (norm + 1e-6)) when
//     max_grad_norm > 0, where norm = sqrt(norm_stats.sum) comes from group_reduce (mode 2);
//     m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//     param -= lr * (m / (1 - beta1_pow)) / (sqrt(v / (1 - beta2_pow)) + epsilon)
//   Packed networks (set_len > 0): parameter i belongs to set (param_base + i) / set_len, and
//     each set has its own state (adam_begin advances param_count / set_len of them) and its
//     own gradient norm norm_stats[set], so each set steps exactly as it would alone.
//   grad_accumulate (one per parameter): mode 0: acc += grad (a minibatch's gradients kept for
//     one later step); mode 1: grad = acc * scale, acc = 0 (the mean over the minibatches, for
//     the one Adam step that follows). Each parameter sums in minibatch order: deterministic.

struct AdamParams {
    param_count: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    max_grad_norm: f32,
    accumulate_mode: u32,
    accumulate_scale: f32,
    set_len: u32,
    param_base: u32,
    pad0: u32,
    pad1: u32,
}

struct AdamState {
    beta1_pow: f32,
    beta2_pow: f32,
    step: u32,
    pad0: u32,
}

struct GroupStats {
    sum: f32,
    count: u32,
    mean: f32,
    variance: f32,
}

@group(0) @binding(0) var<uniform> p: AdamParams;
// adam_begin
@group(0) @binding(1) var<storage, read_write> begin_state: array<AdamState>;
// adam_update
@group(0) @binding(1) var<storage, read> state: array<AdamState>;
@group(0) @binding(2) var<storage, read> norm_stats: array<GroupStats>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read> grads: array<f32>;
@group(0) @binding(5) var<storage, read_write> moment1: array<f32>;
@group(0) @binding(6) var<storage, read_write> moment2: array<f32>;
// grad_accumulate
@group(0) @binding(1) var<storage, read_write> acc_grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> accumulator: array<f32>;

@compute @workgroup_size(1)
fn adam_begin() {
    var sets = 1u;
    if p.set_len > 0u {
        sets = p.param_count / p.set_len;
    }
    for (var k = 0u; k < sets; k = k + 1u) {
        var s = begin_state[k];
        s.step = s.step + 1u;
        s.beta1_pow = s.beta1_pow * p.beta1;
        s.beta2_pow = s.beta2_pow * p.beta2;
        begin_state[k] = s;
    }
}

// The parameter set of parameter i of this launch.
fn set_of(i: u32) -> u32 {
    if p.set_len == 0u {
        return 0u;
    }
    return (p.param_base + i) / p.set_len;
}

@compute @workgroup_size(64)
fn adam_update(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid;
    if i >= p.param_count {
        return;
    }
    let k = set_of(i);
    var clip = 1.0;
    if p.max_grad_norm > 0.0 {
        let norm = sqrt(norm_stats[k].sum);
        clip = min(1.0, p.max_grad_norm / (norm + 1e-6));
    }
    let g = grads[i] * clip;
    let m = p.beta1 * moment1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * moment2[i] + (1.0 - p.beta2) * g * g;
    moment1[i] = m;
    moment2[i] = v;
    let s = state[k];
    let m_hat = m / (1.0 - s.beta1_pow);
    let v_hat = v / (1.0 - s.beta2_pow);
    params[i] = params[i] - p.lr * m_hat / (sqrt(v_hat) + p.epsilon);
}

@compute @workgroup_size(64)
fn grad_accumulate(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid;
    if i >= p.param_count {
        return;
    }
    if p.accumulate_mode == 0u {
        accumulator[i] = accumulator[i] + acc_grads[i];
    } else {
        acc_grads[i] = accumulator[i] * p.accumulate_scale;
        accumulator[i] = 0.0;
    }
}
