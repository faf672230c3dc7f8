//! Guarantees: under uniform random actions the HospitalSim kernel reproduces the sanity targets
//! of spec §7.5 — in the `reference` profile about 1,925 swing-doctor moves per 12-hour day, and
//! escort (dispatch) travel times inside the ranges of the travel table (nurses 1.667–9.167 min,
//! robots ×0.9) — plus the worked ledger totals (≈209 non-impaired vs ≈206 impaired before
//! penalties and bounces).

use fairground_kernel::Profile;
use fairground_kernel::hs::{HsActions, HsConfig, HsDayStats, HsEnv, HsRound, RandomPolicy};
use fairground_kernel::pool::WorkerPool;

fn days(profile: Profile, instances: u32, days: u32, seed: u64) -> Vec<HsDayStats> {
    let config = HsConfig::new(instances, seed, profile);
    let n = instances as usize;
    let pool = WorkerPool::new(1);
    let mut policy = RandomPolicy::new(seed, n, false);
    let mut actions = HsActions::new(n, &config.params);
    let mut env = HsEnv::new(config);
    let mut round = HsRound::new(n);
    env.observe(&mut round);
    let mut out = Vec::new();
    let mut done = vec![0u32; n];
    while done.iter().any(|&d| d < days) {
        policy.fill(&round, &mut actions);
        env.step(&actions, &mut round, &pool);
        for (i, done_i) in done.iter_mut().enumerate() {
            if round.day_done[i] == 1 && *done_i < days {
                *done_i += 1;
                out.push(round.day_stats[i]);
            }
        }
    }
    out
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn reference_random_manager_moves_about_1925_swing_doctors_per_day() {
    let stats = days(Profile::Reference, 16, 4, 11);
    let moves = mean(stats.iter().map(|s| s.swing_moves as f64));
    let manager = mean(stats.iter().map(|s| s.decisions[2] as f64));
    let router = mean(stats.iter().map(|s| s.decisions[0] as f64));
    let dispatcher = mean(stats.iter().map(|s| s.decisions[1] as f64));
    let treated = mean(stats.iter().map(|s| s.patients_treated as f64));
    eprintln!(
        "moves/day {moves:.1}, decisions/day router {router:.1} dispatcher {dispatcher:.1} \
         manager {manager:.1}, treated {treated:.1}"
    );
    // Spec §2.7c: ≈144 decisions × ≈13.4 moves ≈ 1925. Per decision the number of moves is
    // Binomial(18, 6/7) (mean 15.4, sd 1.5) minus the rare components that target the ward a
    // doctor already stands in; over 64 days the sampling error of the mean is < 5 moves, so a
    // ±2% band (±38) tests the rule, not the noise.
    assert!(
        (1887.0..=1963.0).contains(&moves),
        "swing moves per day {moves}"
    );
    assert!(
        (140.0..=145.0).contains(&manager),
        "manager decisions per day {manager}"
    );
}

#[test]
fn escort_travel_times_fall_in_the_spec_ranges() {
    for profile in Profile::ALL {
        let stats = days(profile, 8, 2, 5);
        for s in &stats {
            // Idle helpers always start from the StaffArea: nurse 1.667 (Triage) to 9.167
            // (Psychiatry, Pediatrics at 90 m/min with 2 floors); robots × 0.9.
            // A random dispatcher addresses only the first 20 idle helpers (nurses come first),
            // so robots are used only when more than 40 nurses are busy: often never in a day.
            assert!(s.escort_travels[0] > 0, "{profile}: no nurse escorts");
            assert!(
                s.escort_travel_min[0] >= 1.666 && s.escort_travel_max[0] <= 9.167 + 1e-9,
                "{s:?}"
            );
            if s.escort_travels[1] > 0 {
                assert!(
                    s.escort_travel_min[1] >= 1.5 - 1e-9 && s.escort_travel_max[1] <= 8.25 + 1e-9,
                    "{s:?}"
                );
            }
        }
        let nurse = mean(
            stats
                .iter()
                .map(|s| s.escort_travel_sum[0] / s.escort_travels[0] as f64),
        );
        let wait = mean(
            stats
                .iter()
                .map(|s| s.escort_wait_sum / s.escort_waits.max(1) as f64),
        );
        let robots: u32 = stats.iter().map(|s| s.escort_travels[1]).sum();
        eprintln!(
            "{profile}: escort travel nurse mean {nurse:.3} ({robots} robot escorts), escort wait {wait:.3}"
        );
        assert!((1.667..=9.167).contains(&nurse), "{nurse}");
    }
}

#[test]
fn finished_patients_ledgers_are_near_the_worked_totals() {
    let stats = days(Profile::Reference, 8, 2, 3);
    let mut g = [0.0f64; 2];
    for s in &stats {
        let (a, b) = s.finished_mean_ledger();
        g[0] += a / stats.len() as f64;
        g[1] += b / stats.len() as f64;
    }
    eprintln!(
        "finished mean ledger: non-impaired {:.2}, impaired {:.2}",
        g[0], g[1]
    );
    // Spec §7.5: ≈209 vs ≈206 before penalties and bounces; bounces add shaping (+3.4 / +1.0
    // each) and waiting penalties subtract, so allow a band around each.
    assert!((190.0..=240.0).contains(&g[0]), "{g:?}");
    assert!((200.0..=215.0).contains(&g[1]), "{g:?}");
}
