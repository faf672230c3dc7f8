// Generalised advantage estimation, one invocation per agent trajectory. Buffers are time-major,
// agent-minor: index t * agents + a. dones[i] = 1 means the episode ended after step t, so the
// next value is not bootstrapped across it. last_values[a] bootstraps the final step.
// A launch may cover a chunk of time steps (see GpuExecutor, which runs chunks latest first):
// with carry == 1 the bound arrays hold one more step after the chunk's, already computed, and
// the recursion starts from its value and advantage instead of last_values and 0 (the very
// values the unchunked recursion carries, so the results are bit-identical).
//   delta_t = r_t + gamma * V_{t+1} * (1 - d_t) - V_t
//   A_t     = delta_t + gamma * gae_lambda * (1 - d_t) * A_{t+1};   returns_t = A_t + V_t

struct GaeParams {
    steps: u32,
    agents: u32,
    gamma: f32,
    gae_lambda: f32,
    carry: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: GaeParams;
@group(0) @binding(1) var<storage, read> rewards: array<f32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read> dones: array<f32>;
@group(0) @binding(4) var<storage, read> last_values: array<f32>;
@group(0) @binding(5) var<storage, read_write> advantages: array<f32>;
@group(0) @binding(6) var<storage, read_write> returns: array<f32>;

// Agent a's recursion over its first `len` steps, latest first, from the value and advantage
// that follow them. Both entry points use it, so their arithmetic is the same.
fn walk(a: u32, len: u32, next_value0: f32, running0: f32) {
    var next_value = next_value0;
    var running = running0;
    for (var k = 0u; k < len; k = k + 1u) {
        let i = (len - 1u - k) * p.agents + a;
        let nonterminal = 1.0 - dones[i];
        let delta = rewards[i] + p.gamma * next_value * nonterminal - values[i];
        running = delta + p.gamma * p.gae_lambda * nonterminal * running;
        advantages[i] = running;
        returns[i] = running + values[i];
        next_value = values[i];
    }
}

@compute @workgroup_size(64)
fn gae(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let a = (wg.y * nwg.x + wg.x) * 64u + lid;
    if a >= p.agents {
        return;
    }
    var next_value = last_values[a];
    var running = 0.0;
    if p.carry != 0u {
        next_value = values[p.steps * p.agents + a];
        running = advantages[p.steps * p.agents + a];
    }
    walk(a, p.steps, next_value, running);
}

// Ragged GAE: agent a's trajectory is only its first lengths[a] steps (rows t * agents + a for
// t < lengths[a]); later rows are not read or written. The last of them bootstraps from
// last_values[a] (unless done), as a full-length trajectory's last step does. This is the
// rollout store of a trainer whose agents act a varying number of times per rollout (HS: the
// k-th decision of instance a for a role is row k * agents + a). Never launched in chunks (the
// executor binds its buffers whole), so carry is unused.
@group(0) @binding(7) var<storage, read> lengths: array<u32>;

@compute @workgroup_size(64)
fn gae_ragged(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let a = (wg.y * nwg.x + wg.x) * 64u + lid;
    if a >= p.agents {
        return;
    }
    walk(a, min(lengths[a], p.steps), last_values[a], 0.0);
}

// Returns from the advantages as they stand: returns_i = advantages_i + values_i, one
// invocation per row of the first steps x agents rows. Run after the standardisation of the
// advantages, it makes the value target the standardised advantage plus the stored value (the
// reference's HS counterfactual script, spec §3.2); GAE's own returns use the raw advantage.
// Binds the Gae bindings (reads only values and advantages); chunks of time steps are
// independent (no carry).
@compute @workgroup_size(64)
fn gae_returns(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid;
    if i >= p.steps * p.agents {
        return;
    }
    returns[i] = advantages[i] + values[i];
}
