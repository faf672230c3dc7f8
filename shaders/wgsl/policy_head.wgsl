// Policy heads: categorical and multi-discrete (independent components), one invocation per row.
// The logits of a row are the components' logits side by side (component_sizes[c] each).
// With use_mask != 0, masks[row * logit_width + j] == 0 forbids logit j (probability 0).
// Per row the head writes policy_out[row * 2 + 0] = sum over components of log pi(a_c) and
// policy_out[row * 2 + 1] = sum of the components' entropies.
//
// head_sample draws a_c by inverting the CDF at u = (philox >> 8) * 2^-24, where philox is the
// first word of Philox4x32-10 with counter (iteration, step, agent_offset + row, c) and key
// (seed_lo, seed_hi). Integer ops only, so the CPU twin draws the same u bit for bit.
// head_evaluate scores stored actions; head_backward turns dL/dlogp and dL/dentropy into
// dL/dlogits (masked logits get 0), plus, with extra_grad, a gradient given per logit.

struct HeadParams {
    rows: u32,
    logit_width: u32,
    component_count: u32,
    use_mask: u32,
    seed_lo: u32,
    seed_hi: u32,
    iteration: u32,
    step: u32,
    agent_offset: u32,
    extra_grad: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> masks: array<u32>;
@group(0) @binding(3) var<storage, read> component_sizes: array<u32>;
// head_sample
@group(0) @binding(4) var<storage, read_write> sampled_actions: array<u32>;
@group(0) @binding(5) var<storage, read_write> sample_out: array<f32>;
// head_evaluate
@group(0) @binding(4) var<storage, read> eval_actions: array<u32>;
@group(0) @binding(5) var<storage, read_write> eval_out: array<f32>;
// head_backward
@group(0) @binding(4) var<storage, read> bw_actions: array<u32>;
@group(0) @binding(5) var<storage, read> policy_grad: array<f32>;
@group(0) @binding(6) var<storage, read_write> logit_grad: array<f32>;
@group(0) @binding(7) var<storage, read> extra: array<f32>;

const NEG_BIG: f32 = -3.0e38;

fn mulhi(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    // Cannot overflow: at most (2^16 - 1) * 2 + (2^16 - 1)^2 = 2^32 - 1.
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + lo_hi;
    return hi_hi + (hi_lo >> 16u) + (cross >> 16u);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round = round + 1u) {
        if round > 0u {
            k = vec2<u32>(k.x + 0x9E3779B9u, k.y + 0xBB67AE85u);
        }
        let hi0 = mulhi(0xD2511F53u, c.x);
        let lo0 = 0xD2511F53u * c.x;
        let hi1 = mulhi(0xCD9E8D57u, c.z);
        let lo1 = 0xCD9E8D57u * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

fn uniform01(row: u32, component: u32) -> f32 {
    let bits = philox4x32_10(
        vec4<u32>(p.iteration, p.step, p.agent_offset + row, component),
        vec2<u32>(p.seed_lo, p.seed_hi),
    );
    return f32(bits.x >> 8u) * (1.0 / 16777216.0);
}

fn allowed(j: u32, row: u32) -> bool {
    return p.use_mask == 0u || masks[row * p.logit_width + j] != 0u;
}

// log-sum-exp of a component's allowed logits (max first, then ascending order).
fn component_lse(row: u32, start: u32, size: u32) -> f32 {
    var m = NEG_BIG;
    for (var j = start; j < start + size; j = j + 1u) {
        if allowed(j, row) {
            m = max(m, logits[row * p.logit_width + j]);
        }
    }
    var s = 0.0;
    for (var j = start; j < start + size; j = j + 1u) {
        if allowed(j, row) {
            s = s + exp(logits[row * p.logit_width + j] - m);
        }
    }
    return m + log(s);
}

fn component_entropy(row: u32, start: u32, size: u32, lse: f32) -> f32 {
    var h = 0.0;
    for (var j = start; j < start + size; j = j + 1u) {
        if allowed(j, row) {
            let lp = logits[row * p.logit_width + j] - lse;
            h = h - exp(lp) * lp;
        }
    }
    return h;
}

fn row_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn head_sample(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_index(wg, nwg, lid);
    if row >= p.rows {
        return;
    }
    var start = 0u;
    var logp = 0.0;
    var entropy = 0.0;
    for (var c = 0u; c < p.component_count; c = c + 1u) {
        let size = component_sizes[c];
        let lse = component_lse(row, start, size);
        let u = uniform01(row, c);
        var action = start;
        var last_allowed = start;
        var found = false;
        var cdf = 0.0;
        for (var j = start; j < start + size; j = j + 1u) {
            if allowed(j, row) {
                last_allowed = j;
                cdf = cdf + exp(logits[row * p.logit_width + j] - lse);
                if !found && u < cdf {
                    action = j;
                    found = true;
                }
            }
        }
        if !found {
            // u beyond the rounded total: the last allowed action.
            action = last_allowed;
        }
        sampled_actions[row * p.component_count + c] = action - start;
        logp = logp + (logits[row * p.logit_width + action] - lse);
        entropy = entropy + component_entropy(row, start, size, lse);
        start = start + size;
    }
    sample_out[row * 2u] = logp;
    sample_out[row * 2u + 1u] = entropy;
}

@compute @workgroup_size(64)
fn head_evaluate(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_index(wg, nwg, lid);
    if row >= p.rows {
        return;
    }
    var start = 0u;
    var logp = 0.0;
    var entropy = 0.0;
    for (var c = 0u; c < p.component_count; c = c + 1u) {
        let size = component_sizes[c];
        let lse = component_lse(row, start, size);
        let action = start + eval_actions[row * p.component_count + c];
        logp = logp + (logits[row * p.logit_width + action] - lse);
        entropy = entropy + component_entropy(row, start, size, lse);
        start = start + size;
    }
    eval_out[row * 2u] = logp;
    eval_out[row * 2u + 1u] = entropy;
}

@compute @workgroup_size(64)
fn head_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_index(wg, nwg, lid);
    if row >= p.rows {
        return;
    }
    let g_logp = policy_grad[row * 2u];
    let g_entropy = policy_grad[row * 2u + 1u];
    var start = 0u;
    for (var c = 0u; c < p.component_count; c = c + 1u) {
        let size = component_sizes[c];
        let lse = component_lse(row, start, size);
        let h = component_entropy(row, start, size, lse);
        let action = start + bw_actions[row * p.component_count + c];
        for (var j = start; j < start + size; j = j + 1u) {
            var g = 0.0;
            if allowed(j, row) {
                let lp = logits[row * p.logit_width + j] - lse;
                let prob = exp(lp);
                // d log pi(a) / dz_j = [j == a] - p_j;  d H / dz_j = -p_j (log p_j + H)
                g = g_logp * (select(0.0, 1.0, j == action) - prob) - g_entropy * prob * (lp + h);
                if p.extra_grad == 1u {
                    g = g + extra[row * p.logit_width + j];
                }
            }
            logit_grad[row * p.logit_width + j] = g;
        }
        start = start + size;
    }
}
