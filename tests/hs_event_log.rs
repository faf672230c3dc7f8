//! Guarantees: the event log of the first simulated hour of a small seeded HospitalSim day
//! (reference profile, 40 patients, uniform random actions) is exactly the committed insta
//! snapshot: every status change (time, cause, patient, old -> new status) and every staff action
//! (dispatch, manager move, helper and doctor arrivals). Any behavioural change shows up here as a
//! readable diff. Review changes with `cargo insta review`; CI never writes snapshots.

use fairground_kernel::Profile;
use fairground_kernel::hs::{
    EventSink, HsActions, HsConfig, HsEnv, HsRound, InstanceRef, LogRecord, RandomPolicy,
};
use std::fmt::Write;

struct TextLog {
    until_minute: u16,
    text: String,
}

impl EventSink for TextLog {
    const ENABLED: bool = true;

    fn record(&mut self, r: LogRecord) {
        if r.clock >= self.until_minute {
            return;
        }
        let who = match (r.patient, r.staff) {
            (Some(p), Some(s)) if s != u16::MAX => format!("patient {p:>2} staff {s:>3}"),
            (Some(p), _) => format!("patient {p:>2}"),
            (None, Some(s)) => format!("staff {s:>3}"),
            (None, None) => String::new(),
        };
        let change = match r.change {
            Some((a, b)) => format!("{} -> {}", a.name(), b.name()),
            None => String::new(),
        };
        writeln!(
            self.text,
            "{:>3} {:<26} {:<22} {}",
            r.clock,
            r.cause.name(),
            who,
            change
        )
        .unwrap();
    }

    fn tick_end(&mut self, _instance: u32, _state: &InstanceRef<'_>) {}
}

#[test]
fn first_hour_event_log_of_a_small_day() {
    let mut config = HsConfig::new(1, 7, Profile::Reference);
    config.params.n_patients = 40;
    let mut policy = RandomPolicy::new(7, 1, false);
    let mut actions = HsActions::new(1, &config.params);
    let mut env = HsEnv::new(config);
    let mut round = HsRound::new(1);
    env.observe(&mut round);
    let mut log = TextLog {
        until_minute: 60,
        text: String::new(),
    };
    while env.instance(0).clock() < 60 {
        policy.fill(&round, &mut actions);
        env.step_logged(&actions, &mut round, &mut log);
    }
    insta::assert_snapshot!(log.text);
}
