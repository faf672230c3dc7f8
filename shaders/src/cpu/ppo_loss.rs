//! Twin of ppo_loss.wgsl: the clipped PPO loss per row, its gradients and the loss terms the
//! statistics reduce.

use crate::layout::LossParams;

/// Twin of `ppo_loss` (with `p.pairwise`, the reference's B x B HS ratio; see the shader).
#[allow(clippy::too_many_arguments)]
pub fn ppo_loss(
    p: &LossParams,
    policy_new: &[f32],
    values_new: &[f32],
    policy_old: &[f32],
    values_old: &[f32],
    advantages: &[f32],
    adv_adjust: &[f32],
    returns: &[f32],
    policy_grad: &mut [f32],
    value_grad: &mut [f32],
    terms: &mut [f32],
) {
    let rows = p.rows as usize;
    for i in 0..rows {
        let adv = advantages[i] + adv_adjust[i];
        let log_ratio = policy_new[i * 2] - policy_old[i * 2];
        let ratio = log_ratio.exp();
        let (pg, d_pg, clipped) = if p.pairwise != 0 {
            // Row i's pairs (r_ki = exp(logp_new_i - logp_old_k)), k in order.
            let lp_new = policy_new[i * 2];
            let (mut pg_sum, mut d_sum, mut clipped_sum) = (0.0f32, 0.0f32, 0.0f32);
            for k in 0..rows {
                let r = (lp_new - policy_old[k * 2]).exp();
                let u = -adv * r;
                let c = -adv * r.clamp(1.0 - p.clip_coef, 1.0 + p.clip_coef);
                pg_sum += u.max(c);
                d_sum += if u >= c { -adv * r } else { 0.0 };
                clipped_sum += if (r - 1.0).abs() > p.clip_coef {
                    1.0
                } else {
                    0.0
                };
            }
            let inv_b = 1.0 / p.rows as f32;
            (pg_sum * inv_b, d_sum * inv_b, clipped_sum * inv_b)
        } else {
            let pg_unclipped = -adv * ratio;
            let pg_clipped = -adv * ratio.clamp(1.0 - p.clip_coef, 1.0 + p.clip_coef);
            let d_pg = if pg_unclipped >= pg_clipped {
                -adv * ratio
            } else {
                0.0
            };
            let clipped = if (ratio - 1.0).abs() > p.clip_coef {
                1.0
            } else {
                0.0
            };
            (pg_unclipped.max(pg_clipped), d_pg, clipped)
        };

        let v = values_new[i];
        let err = v - returns[i];
        let mut v_loss = err * err;
        let mut d_v = 2.0 * err;
        if p.clip_vloss != 0 {
            let v_old = values_old[i];
            let dv = v - v_old;
            let err_clipped = v_old + dv.clamp(-p.clip_coef, p.clip_coef) - returns[i];
            let v_loss_clipped = err_clipped * err_clipped;
            if v_loss_clipped > v_loss {
                v_loss = v_loss_clipped;
                d_v = if dv > -p.clip_coef && dv < p.clip_coef {
                    2.0 * err_clipped
                } else {
                    0.0
                };
            }
        }
        let scale = p.loss_scale * p.loss_norm;
        policy_grad[i * 2] = scale * d_pg;
        policy_grad[i * 2 + 1] = -scale * p.ent_coef;
        value_grad[i] = scale * p.vf_coef * d_v;
        terms[i * 4] = pg;
        terms[i * 4 + 1] = v_loss;
        terms[i * 4 + 2] = (ratio - 1.0) - log_ratio;
        terms[i * 4 + 3] = clipped;
    }
}
