//! The replay's two kernel-facing pieces: the per-column state digest (the same function when
//! recording and when checking), and the re-simulation of a recorded episode from its start
//! snapshot and actions, without networks.
//!
//! The digest is of the whole kernel state, hidden streams included, not of what the step
//! returned: a replay that re-simulates to the same observations with a different random
//! stream state is caught at the step it happened, not later. Each column (AH: `agent_x`,
//! `bush_colour`, ...; HS: `sc`, `p_status`, ...) gets its own 32-bit digest so a mismatch
//! names what differed. Columns are serialised with serde_json (the checkpoints' format: exact
//! for every float) and hashed with the kernel's stable `TrajectoryHash`.

use crate::env::ReplayView;
use fairground_kernel::ah::{ACTIONS, AhEnv, AhSnapshot, StepOut};
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::hs::{
    DISPATCH_CHOICES, HsActions, HsEnv, HsRound, HsSnapshot, MANAGER_CHOICES, ROUTER_ACTIONS,
};
use fairground_kernel::pool::WorkerPool;

/// The kernel state as named columns (serde's field names of the state, in their JSON order).
fn state_value(view: &ReplayView<'_>) -> serde_json::Value {
    match view {
        ReplayView::Ah { env, .. } => serde_json::to_value(env.snapshot().state),
        ReplayView::Hs { env, .. } => serde_json::to_value(env.snapshot().state),
    }
    .expect("kernel state serialises")
}

/// Reused buffers of the digest.
#[derive(Default)]
pub struct Digester {
    buf: Vec<u8>,
}

impl Digester {
    /// The state's column names and one digest per column, appended to `out`.
    pub fn digest(&mut self, view: &ReplayView<'_>, names: &mut Vec<String>, out: &mut Vec<u32>) {
        names.clear();
        let serde_json::Value::Object(columns) = state_value(view) else {
            unreachable!("a kernel state serialises to an object")
        };
        for (name, v) in &columns {
            self.buf.clear();
            serde_json::to_writer(&mut self.buf, v).expect("json");
            let mut h = TrajectoryHash::new();
            h.write_bytes(&self.buf);
            // The low half of the 64-bit digest: 2^-32 per column and round of missing a
            // difference is far below what a replay check needs, and halves the file.
            out.push(h.finish() as u32);
            names.push(name.clone());
        }
    }
}

/// Bytes of one round's actions of a view.
pub fn action_bytes(view: &ReplayView<'_>) -> usize {
    match view {
        ReplayView::Ah { actions, .. } => actions.len(),
        ReplayView::Hs { actions, .. } => {
            actions.router.len() + actions.dispatcher.len() + actions.manager.len()
        }
    }
}

/// One round's actions of a view, appended to `out` (HS: router, dispatcher, manager buffers).
pub fn push_actions(view: &ReplayView<'_>, out: &mut Vec<u8>) {
    match view {
        ReplayView::Ah { actions, .. } => out.extend_from_slice(actions),
        ReplayView::Hs { actions, .. } => {
            out.extend_from_slice(&actions.router);
            out.extend_from_slice(&actions.dispatcher);
            out.extend_from_slice(&actions.manager);
        }
    }
}

/// The kernel's snapshot of a view (the replay's start).
pub fn snapshot(view: &ReplayView<'_>) -> serde_json::Value {
    match view {
        ReplayView::Ah { env, .. } => serde_json::to_value(env.snapshot()),
        ReplayView::Hs { env, .. } => serde_json::to_value(env.snapshot()),
    }
    .expect("snapshot serialises")
}

/// What an episode ended with, as the step that ended it left it (AH: factual instance 0's
/// returns by group and per agent; HS: hospital 0's finished day).
pub fn outcome(view: &ReplayView<'_>) -> serde_json::Value {
    match view {
        ReplayView::Ah { env, .. } => {
            let i = env.instance(0);
            serde_json::json!({
                "group_returns": i.last_episode_group_returns(),
                "returns": i.last_episode_returns(),
            })
        }
        ReplayView::Hs { round, .. } => serde_json::to_value(round.day_stats[0]).expect("json"),
    }
}

/// Whether the view's last step ended factual instance 0's episode (AH) or day (HS).
pub fn episode_ended(view: &ReplayView<'_>, ah_done: bool) -> bool {
    match view {
        ReplayView::Ah { .. } => ah_done,
        ReplayView::Hs { round, .. } => round.day_done[0] != 0,
    }
}

/// A kernel restored from a replay's start, stepped with its recorded actions.
pub enum Kernel {
    // The kernels are boxed: hundreds of bytes to kilobytes each, of different sizes.
    Ah {
        env: Box<AhEnv>,
        obs: Vec<f32>,
        rewards: Vec<f32>,
        dones: Vec<u8>,
        groups: Vec<u8>,
        prefs: Vec<u8>,
    },
    Hs {
        env: Box<HsEnv>,
        actions: HsActions,
        // Boxed: the round's outputs are most of the variant's size.
        round: Box<HsRound>,
    },
}

impl Kernel {
    /// The kernel of environment `env` ("ah" or "hs") from a start snapshot.
    pub fn restore(env: &str, start: &serde_json::Value) -> Result<Self, String> {
        match env {
            "ah" => {
                let snap: AhSnapshot = serde_json::from_value(start.clone())
                    .map_err(|e| format!("its AH start snapshot does not parse: {e}"))?;
                let env = AhEnv::restore(snap)
                    .map_err(|e| format!("its AH start snapshot: `{}`: {}", e.field, e.message))?;
                let slots = env.instances() * env.agents();
                Ok(Kernel::Ah {
                    obs: vec![0.0; env.obs_len()],
                    rewards: vec![0.0; slots],
                    dones: vec![0; env.instances()],
                    groups: vec![0; slots],
                    prefs: vec![0; slots],
                    env: Box::new(env),
                })
            }
            "hs" => {
                let snap: HsSnapshot = serde_json::from_value(start.clone())
                    .map_err(|e| format!("its HS start snapshot does not parse: {e}"))?;
                // The kernel asserts its invariants on restore; a snapshot that passed the
                // checksum but breaks one is refused in one line, not a panic.
                let env = quietly(|| HsEnv::restore(snap))
                    .map_err(|why| format!("its HS start snapshot is inconsistent: {why}"))?;
                let n = env.instances();
                Ok(Kernel::Hs {
                    actions: HsActions::new(n, &env.config().params),
                    round: Box::new(HsRound::new(n)),
                    env: Box::new(env),
                })
            }
            other => Err(format!("unknown environment {other:?} (ah or hs)")),
        }
    }

    /// Action bytes one round takes.
    pub fn action_bytes(&self) -> usize {
        match self {
            Kernel::Ah { env, .. } => env.instances() * env.agents(),
            Kernel::Hs { actions, .. } => {
                actions.router.len() + actions.dispatcher.len() + actions.manager.len()
            }
        }
    }

    /// One round with the recorded actions `a` (of [`Kernel::action_bytes`] bytes).
    pub fn step(&mut self, a: &[u8], pool: &WorkerPool) -> Result<(), String> {
        if a.len() != self.action_bytes() {
            return Err(format!(
                "{} action bytes per round, the kernel takes {}",
                a.len(),
                self.action_bytes()
            ));
        }
        match self {
            Kernel::Ah {
                env,
                obs,
                rewards,
                dones,
                groups,
                prefs,
            } => {
                if let Some(bad) = a.iter().find(|&&x| u32::from(x) >= ACTIONS) {
                    return Err(format!("action {bad} out of range 0..{ACTIONS}"));
                }
                env.step(
                    a,
                    StepOut {
                        obs,
                        rewards,
                        dones,
                        groups,
                        prefs,
                    },
                    pool,
                );
            }
            Kernel::Hs {
                env,
                actions,
                round,
            } => {
                let (r, rest) = a.split_at(actions.router.len());
                let (d, m) = rest.split_at(actions.dispatcher.len());
                for (part, bytes, choices) in [
                    ("router", r, ROUTER_ACTIONS),
                    ("dispatcher", d, DISPATCH_CHOICES),
                    ("manager", m, MANAGER_CHOICES),
                ] {
                    if let Some(bad) = bytes.iter().find(|&&x| u32::from(x) >= choices) {
                        return Err(format!("{part} action {bad} out of range 0..{choices}"));
                    }
                }
                actions.router.copy_from_slice(r);
                actions.dispatcher.copy_from_slice(d);
                actions.manager.copy_from_slice(m);
                env.step(actions, round, pool);
            }
        }
        Ok(())
    }

    /// The view the digest and the outcome read.
    pub fn view(&self) -> ReplayView<'_> {
        match self {
            Kernel::Ah { env, .. } => ReplayView::Ah { env, actions: &[] },
            Kernel::Hs {
                env,
                actions,
                round,
            } => ReplayView::Hs {
                env,
                actions,
                round,
            },
        }
    }

    /// Whether the last step ended instance 0's episode (AH) or day (HS).
    pub fn episode_ended(&self) -> bool {
        match self {
            Kernel::Ah { dones, .. } => episode_ended(&self.view(), dones[0] != 0),
            Kernel::Hs { .. } => episode_ended(&self.view(), false),
        }
    }
}

/// `f`, with a panic turned into its message instead of a report on stderr (the caller prints
/// one line). Only for the kernel's own consistency assertions on restored data.
fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(hook);
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a kernel assertion failed".into())
    })
}
