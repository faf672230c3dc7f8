//! Guarantees (VOPR-style randomized simulation test): for a random seed, random hospital sizes
//! (including tiny staffs that make queues form), both profiles and a mix of policies (uniform,
//! a dispatcher that never assigns — exercising the empty-dispatch cap —, a perfect router), the
//! HospitalSim kernel keeps its invariants after EVERY tick: patients conserved and each in
//! exactly one place consistent with its status, the clock advancing by one minute per tick
//! within a day, no event left in the past, every queue within capacity, and every status
//! change one the spec's journey allows; and after every decision, the reward split by impairment
//! group sums to the decision's reward, a routing's all in one group. The seed comes from SIM_SEED or is picked at random;
//! failures print `reproduce with SIM_SEED=…`.

#![allow(clippy::needless_range_loop)] // indices address several parallel buffers

use fairground_kernel::Profile;
use fairground_kernel::hs::patients::transition_allowed;
use fairground_kernel::hs::{
    EventSink, HsActions, HsConfig, HsEnv, HsParams, HsRound, IMPAIRMENTS, InstanceRef, LogRecord,
    PENDING_DISPATCHER, PENDING_ROUTER, RandomPolicy,
};
use fairground_kernel::rng::{Purpose, Stream};

struct Checker {
    params: HsParams,
    /// Per instance: (day, clock) of the last completed tick.
    last: Vec<(u32, u16)>,
    ticks: u64,
    transitions: u64,
    error: Option<String>,
}

impl EventSink for Checker {
    const ENABLED: bool = true;

    fn record(&mut self, rec: LogRecord) {
        if let Some((from, to)) = rec.change {
            self.transitions += 1;
            if !transition_allowed(from, to) && self.error.is_none() {
                self.error = Some(format!(
                    "instance {} minute {}: patient {:?} {} -> {} ({}) is not an allowed transition",
                    rec.instance,
                    rec.clock,
                    rec.patient,
                    from.name(),
                    to.name(),
                    rec.cause.name()
                ));
            }
        }
    }

    fn tick_end(&mut self, instance: u32, state: &InstanceRef<'_>) {
        self.ticks += 1;
        if self.error.is_some() {
            return;
        }
        let day = state.stats().day;
        let clock = state.clock();
        let (last_day, last_clock) = self.last[instance as usize];
        let monotone = if day == last_day {
            clock == last_clock + 1
        } else {
            day == last_day + 1 && clock == 1
        };
        if !monotone {
            self.error = Some(format!(
                "instance {instance}: clock went from day {last_day} minute {last_clock} to day {day} minute {clock}"
            ));
            return;
        }
        self.last[instance as usize] = (day, clock);
        if let Err(e) = state.check_invariants(&self.params) {
            self.error = Some(format!("instance {instance} day {day} minute {clock}: {e}"));
        }
    }
}

fn random_params(s: &mut Stream) -> HsParams {
    let mut p = HsParams::default();
    if s.below(2) == 0 {
        // A small, understaffed hospital: queues and waits build up.
        p.n_patients = s.range_inclusive(1, 320) as u16;
        p.n_clerks = s.range_inclusive(1, 4) as u8;
        p.n_triage = s.range_inclusive(1, 4) as u8;
        p.n_nurses = s.range_inclusive(0, 4) as u8;
        p.n_robots = s.range_inclusive(if p.n_nurses == 0 { 1 } else { 0 }, 3) as u8;
        p.fixed_doctors_per_ward = s.range_inclusive(0, 3) as u8;
        p.n_swing = s.range_inclusive(1, 6) as u8;
        p.sim_minutes = s.range_inclusive(60, 900) as u16;
        p.dispatch_empty_cap = s.range_inclusive(1, 20) as u16;
    }
    p
}

#[test]
fn invariants_hold_after_every_tick() {
    let seed: u64 = match std::env::var("SIM_SEED") {
        Ok(v) => v.parse().expect("SIM_SEED must be an integer"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!(
        "hs_invariants: SIM_SEED={seed} (reproduce with SIM_SEED={seed} cargo test --test hs_invariants)"
    );
    let mut s = Stream::new(seed, Purpose::RandomActions, &[0xC0DE]);
    let mut total_ticks = 0;
    for case in 0..16 {
        let profile = Profile::ALL[s.below(2) as usize];
        let params = random_params(&mut s);
        let instances = s.range_inclusive(1, 3) as usize;
        let mut config = HsConfig::new(instances as u32, s.next_u64(), profile);
        config.params = params.clone();
        // Policy mix: 0 uniform, 1 lazy dispatcher (never assigns), 2 perfect router.
        let mode = s.below(3);
        let mut policy = RandomPolicy::new(s.next_u64(), instances, false);
        let mut actions = HsActions::new(instances, &params);
        let mut env = HsEnv::new(config);
        let mut round = HsRound::new(instances);
        env.observe(&mut round);
        let mut checker = Checker {
            params: params.clone(),
            last: (0..instances)
                .map(|i| (0, env.instance(i).clock()))
                .collect(),
            ticks: 0,
            transitions: 0,
            error: None,
        };
        let mut days = vec![0u32; instances];
        while days.iter().any(|&d| d < 2) {
            policy.fill(&round, &mut actions);
            for i in 0..instances {
                if mode == 1 && round.role[i] == PENDING_DISPATCHER {
                    actions.dispatcher[i * 20..(i + 1) * 20].fill(49);
                }
                if mode == 2 && round.role[i] == PENDING_ROUTER {
                    // Symptoms identify the illness; route to its canonical ward by index.
                    let obs = &round.obs_router[i * 18..i * 18 + 12];
                    let ward = if obs[9] == 1.0 {
                        4 // emergency -> Resuscitation
                    } else if obs[3] == 1.0 {
                        1 // cardio -> AcuteCare
                    } else if obs[11] == 1.0 {
                        3 // pediatric -> Pediatrics
                    } else if obs[7] == 1.0 {
                        2 // psychiatric -> Psychiatry
                    } else if obs[10] == 1.0 {
                        5 // xray -> Imaging
                    } else {
                        0 // general -> PromptCare
                    };
                    actions.router[i] = ward;
                }
            }
            env.step_logged(&actions, &mut round, &mut checker);
            if let Some(e) = &checker.error {
                panic!(
                    "case {case} ({profile}, mode {mode}, {params:?}): {e}\nreproduce with SIM_SEED={seed}"
                );
            }
            for i in 0..instances {
                let parts = &round.reward_by_group[i * IMPAIRMENTS..(i + 1) * IMPAIRMENTS];
                let sum: f32 = parts.iter().sum();
                let r = round.reward[i];
                assert!(
                    (sum - r).abs() <= 1e-3 * r.abs().max(1.0),
                    "case {case}: reward {r} but its groups' parts {parts:?}; reproduce with SIM_SEED={seed}"
                );
                if round.acted[i] == PENDING_ROUTER {
                    assert!(
                        parts.iter().filter(|&&v| v != 0.0).count() <= 1,
                        "a routing concerns one patient: {parts:?}; reproduce with SIM_SEED={seed}"
                    );
                }
                if round.day_done[i] == 1 {
                    days[i] += 1;
                    let st = &round.day_stats[i];
                    assert!(
                        st.patients_treated <= st.patients,
                        "treated more than arrived; reproduce with SIM_SEED={seed}"
                    );
                    if mode == 2 {
                        assert_eq!(st.routing_decisions[1] + st.routing_decisions[2], 0);
                    }
                }
            }
        }
        assert!(checker.transitions > 0, "reproduce with SIM_SEED={seed}");
        total_ticks += checker.ticks;
    }
    eprintln!("hs_invariants: {total_ticks} ticks checked");
}
