// Clipped PPO loss and its gradient, one invocation per sample. With A = advantage + adv_adjust
// (the fairness hook: a per-sample advantage adjustment) and rho = exp(logp_new - logp_old):
//   pg    = max(-A rho, -A clip(rho, 1 - clip_coef, 1 + clip_coef))
//   v     = (V - R)^2, or with clip_vloss max((V - R)^2, (V_old + clip(V - V_old, +-clip_coef) - R)^2)
//   loss  = loss_scale * loss_norm * sum_i (pg_i + vf_coef v_i - ent_coef H_i)
// loss_norm is 1 / rows for a mean; loss_scale is the fairness hook's scalar.
// Outputs the gradient of the loss with respect to logp_new and H (policy_grad, per row 2 floats,
// the input of head_backward), with respect to V (value_grad), and per-sample terms for
// statistics: (pg, v, approx_kl = (rho - 1) - log rho, clipped = |rho - 1| > clip_coef).
//
// pairwise != 0 (the reference's HS importance-ratio broadcasting, spec §3.2 [REPRO]): the
// ratio of a minibatch of B = rows samples is the B x B matrix
//   r_ij = exp(logp_new_j - logp_old_i),
// multiplied by A_j, clipped element-wise, and the surrogate is the mean over all B^2 pairs:
//   pg_j  = (1/B) sum_i max(-A_j r_ij, -A_j clip(r_ij, 1 - clip_coef, 1 + clip_coef))
// so that loss_norm * sum_j pg_j is the B^2 mean. Row j loops over i = 0 .. B-1 in that fixed
// order (no atomics); the old log-probs are constants, so only logp_new_j gets a gradient. The
// value and entropy terms are unchanged; the statistics keep approx_kl of the diagonal
// (r_jj) and report as clipped the fraction of row j's pairs outside the clip range. The launch
// must not be split into chunks of rows (every row reads all B old log-probs).

struct LossParams {
    rows: u32,
    clip_coef: f32,
    vf_coef: f32,
    ent_coef: f32,
    clip_vloss: u32,
    loss_scale: f32,
    loss_norm: f32,
    pairwise: u32,
}

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> policy_new: array<f32>;
@group(0) @binding(2) var<storage, read> values_new: array<f32>;
@group(0) @binding(3) var<storage, read> policy_old: array<f32>;
@group(0) @binding(4) var<storage, read> values_old: array<f32>;
@group(0) @binding(5) var<storage, read> advantages: array<f32>;
@group(0) @binding(6) var<storage, read> adv_adjust: array<f32>;
@group(0) @binding(7) var<storage, read> returns: array<f32>;
@group(0) @binding(8) var<storage, read_write> policy_grad: array<f32>;
@group(0) @binding(9) var<storage, read_write> value_grad: array<f32>;
@group(0) @binding(10) var<storage, read_write> terms: array<f32>;

@compute @workgroup_size(64)
fn ppo_loss(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid;
    if i >= p.rows {
        return;
    }
    let adv = advantages[i] + adv_adjust[i];
    let log_ratio = policy_new[i * 2u] - policy_old[i * 2u];
    let ratio = exp(log_ratio);
    var pg: f32;
    var d_pg: f32;
    var clipped: f32;
    if p.pairwise != 0u {
        let lp_new = policy_new[i * 2u];
        var pg_sum = 0.0;
        var d_sum = 0.0;
        var clipped_sum = 0.0;
        for (var k = 0u; k < p.rows; k = k + 1u) {
            let r = exp(lp_new - policy_old[k * 2u]);
            let u = -adv * r;
            let c = -adv * clamp(r, 1.0 - p.clip_coef, 1.0 + p.clip_coef);
            pg_sum = pg_sum + max(u, c);
            d_sum = d_sum + select(0.0, -adv * r, u >= c);
            clipped_sum = clipped_sum + select(0.0, 1.0, abs(r - 1.0) > p.clip_coef);
        }
        let inv_b = 1.0 / f32(p.rows);
        pg = pg_sum * inv_b;
        d_pg = d_sum * inv_b;
        clipped = clipped_sum * inv_b;
    } else {
        let pg_unclipped = -adv * ratio;
        let pg_clipped = -adv * clamp(ratio, 1.0 - p.clip_coef, 1.0 + p.clip_coef);
        pg = max(pg_unclipped, pg_clipped);
        // When the clipped term is strictly larger, rho lies outside the clip range: gradient 0.
        d_pg = select(0.0, -adv * ratio, pg_unclipped >= pg_clipped);
        clipped = select(0.0, 1.0, abs(ratio - 1.0) > p.clip_coef);
    }

    let v = values_new[i];
    let err = v - returns[i];
    var v_loss = err * err;
    var d_v = 2.0 * err;
    if p.clip_vloss != 0u {
        let v_old = values_old[i];
        let dv = v - v_old;
        let err_clipped = v_old + clamp(dv, -p.clip_coef, p.clip_coef) - returns[i];
        let v_loss_clipped = err_clipped * err_clipped;
        if v_loss_clipped > v_loss {
            v_loss = v_loss_clipped;
            d_v = select(0.0, 2.0 * err_clipped, dv > -p.clip_coef && dv < p.clip_coef);
        }
    }

    let scale = p.loss_scale * p.loss_norm;
    policy_grad[i * 2u] = scale * d_pg;
    policy_grad[i * 2u + 1u] = -scale * p.ent_coef;
    value_grad[i] = scale * p.vf_coef * d_v;
    terms[i * 4u] = pg;
    terms[i * 4u + 1u] = v_loss;
    terms[i * 4u + 2u] = (ratio - 1.0) - log_ratio;
    terms[i * 4u + 3u] = clipped;
}
