//! Guarantees: each AH rule of spec §1.4–§1.6 behaves as specified, in both profiles where they
//! differ: rewards of eat / ripen / change colour / interact, the fixed neighbour scan order,
//! permanent vs one-turn freezes, resting steps of sensitive agents, bush lifespan, clean-profile
//! regrowth, spontaneous growth and its colour rule, episode end with auto-reset and bookkeeping.
//! Each test builds an exact situation with `AhEnv::set_layout` and checks the outcome.

mod common;

use common::{agent, bush, scenario, step};
use fairground_kernel::Profile;
use fairground_kernel::ah::{AhParams, action::*};
use fairground_kernel::pool::WorkerPool;

const RED: u8 = 0;
const BLUE: u8 = 1;

fn small(profile: Profile) -> AhParams {
    let mut p = AhParams::new(profile);
    p.width = 6;
    p.height = 5;
    p.growth_tries = 0; // no spontaneous bushes unless a test wants them
    p
}

fn pool() -> WorkerPool {
    WorkerPool::new(1)
}

#[test]
fn eat_pays_5_for_own_colour_1_for_other_and_unripens() {
    for profile in Profile::ALL {
        let pool = pool();
        let mut env = scenario(
            small(profile),
            &[agent(1, 1, false, RED), agent(4, 1, false, BLUE)],
            &[bush(1, 2, RED, true), bush(4, 2, RED, true)],
        );
        let (_, r, _) = step(&mut env, &[EAT, EAT], &pool);
        assert_eq!(r, vec![5.0, 1.0], "{profile}");
        let inst = env.instance(0);
        assert!(
            inst.bushes().all(|b| !b.ripe),
            "eaten bushes are unripe ({profile})"
        );
        // Eating an unripe bush is feasible but pays nothing.
        let (_, r, _) = step(&mut env, &[EAT, EAT], &pool);
        assert_eq!(r, vec![0.0, 0.0], "{profile}");
    }
}

#[test]
fn neighbour_scan_order_is_down_right_up_left() {
    // (x, y+1) comes first: the unripe bush below is chosen over the ripe one to the right.
    let pool = pool();
    let mut env = scenario(
        small(Profile::Reference),
        &[agent(2, 2, false, RED)],
        &[bush(2, 3, RED, false), bush(3, 2, RED, true)],
    );
    let (_, r, _) = step(&mut env, &[EAT], &pool);
    assert_eq!(r, vec![0.0]);
    assert_eq!(
        env.instance(0).cell(3, 2),
        Some(Err(fairground_kernel::ah::Bush {
            x: 3,
            y: 2,
            colour: RED,
            ripe: true
        }))
    );
    // Without the bush below, right (x+1) comes before up (y-1) and left (x-1).
    let mut env = scenario(
        small(Profile::Reference),
        &[agent(2, 2, false, RED)],
        &[
            bush(1, 2, RED, true),
            bush(2, 1, RED, true),
            bush(3, 2, BLUE, true),
        ],
    );
    let (_, r, _) = step(&mut env, &[EAT], &pool);
    assert_eq!(r, vec![1.0], "ate the blue bush on the right");
}

#[test]
fn ripen_pays_3_own_1_other_0_if_already_ripe() {
    let pool = pool();
    let mut env = scenario(
        small(Profile::Reference),
        &[
            agent(0, 0, false, RED),
            agent(3, 0, false, RED),
            agent(5, 4, false, BLUE),
        ],
        &[
            bush(0, 1, RED, false),
            bush(3, 1, BLUE, false),
            bush(5, 3, BLUE, true),
        ],
    );
    let (_, r, _) = step(&mut env, &[RIPEN, RIPEN, RIPEN], &pool);
    assert_eq!(r, vec![3.0, 1.0, 0.0]);
    assert!(env.instance(0).bushes().all(|b| b.ripe));
}

#[test]
fn change_colour_recolours_the_first_other_coloured_neighbour() {
    let pool = pool();
    let mut env = scenario(
        small(Profile::Reference),
        &[agent(2, 2, false, RED)],
        &[bush(2, 3, RED, true), bush(3, 2, BLUE, true)],
    );
    assert_eq!(env.instance(0).bush_counts(), [1, 1, 0]);
    let (obs, r, _) = step(&mut env, &[CHANGE_COLOUR], &pool);
    assert_eq!(r, vec![5.0]);
    let inst = env.instance(0);
    assert_eq!(inst.bush_counts(), [2, 0, 0]);
    let b = inst.cell(3, 2).unwrap().unwrap_err();
    assert_eq!((b.colour, b.ripe), (RED, false), "recoloured and unripe");
    assert_eq!(
        &obs[5..9],
        &[2.0, 0.0, 1.0, 11.0],
        "counts, distances (no blue bush: width + height = 11)"
    );
    // Every neighbour already red: nothing happens, reward 0, and no substitute action is drawn
    // (the agent stays where it is).
    let (_, r, _) = step(&mut env, &[CHANGE_COLOUR], &pool);
    assert_eq!(r, vec![0.0]);
    assert_eq!(
        (env.instance(0).agent(0).x, env.instance(0).agent(0).y),
        (2, 2)
    );
}

#[test]
fn interact_pays_3_against_other_preference_and_freezes_by_profile() {
    for profile in Profile::ALL {
        let pool = pool();
        // Agent 0 (red) blocks agent 1 (blue) on its right, agent 2 (red) blocks agent 3 (red).
        let mut env = scenario(
            small(profile),
            &[
                agent(0, 0, false, RED),
                agent(1, 0, false, BLUE),
                agent(0, 4, false, RED),
                agent(1, 4, false, RED),
            ],
            &[],
        );
        let (_, r, _) = step(&mut env, &[INTERACT, DOWN, INTERACT, UP], &pool);
        assert_eq!(r[0], 3.0, "{profile}");
        assert_eq!(r[2], 0.0, "same preference pays nothing ({profile})");
        // Agents 1 and 3 act after their blockers in the same step: this turn is lost.
        assert_eq!(
            (env.instance(0).agent(1).x, env.instance(0).agent(1).y),
            (1, 0),
            "{profile}"
        );
        assert_eq!(
            (env.instance(0).agent(3).x, env.instance(0).agent(3).y),
            (1, 4),
            "{profile}"
        );
        // Next step, agent 1 tries again.
        step(&mut env, &[STAY, DOWN, STAY, UP], &pool);
        let a1 = env.instance(0).agent(1);
        match profile {
            Profile::Reference => {
                assert_eq!(a1.frozen_turns, None, "frozen for good");
                assert_eq!((a1.x, a1.y), (1, 0), "still frozen");
            }
            Profile::Clean => {
                assert_eq!(a1.frozen_turns, Some(0), "one turn only");
                assert_eq!((a1.x, a1.y), (1, 1), "moves again");
            }
        }
    }
}

#[test]
fn reblocking_a_frozen_neighbour_pays_again() {
    let pool = pool();
    let mut env = scenario(
        small(Profile::Reference),
        &[agent(0, 0, false, RED), agent(1, 0, false, BLUE)],
        &[],
    );
    for _ in 0..3 {
        let (_, r, _) = step(&mut env, &[INTERACT, STAY], &pool);
        assert_eq!(r[0], 3.0);
    }
}

#[test]
fn sensitive_agents_rest_on_even_steps() {
    // Reference: every action is lost on even steps. Clean: only moves are (with substitutes
    // off, a move on a resting step simply fails). Moves are on in both profiles here, so the
    // rest rule shows alone (the reference's moves never succeed: see below).
    for profile in Profile::ALL {
        let pool = pool();
        let mut params = small(profile);
        params.flags.substitute_failed_actions = false;
        params.flags.moves_never_succeed = false;
        let mut env = scenario(
            params,
            &[agent(0, 0, true, RED), agent(3, 0, true, RED)],
            &[bush(3, 1, RED, true)],
        );
        let (_, r, _) = step(&mut env, &[RIGHT, EAT], &pool); // step 0: resting
        assert_eq!(
            env.instance(0).agent(0).x,
            0,
            "no move on a resting step ({profile})"
        );
        let expected_eat = if profile == Profile::Reference {
            0.0
        } else {
            5.0
        };
        assert_eq!(r[1], expected_eat, "{profile}");
        step(&mut env, &[RIGHT, STAY], &pool); // step 1: acting
        assert_eq!(env.instance(0).agent(0).x, 1, "{profile}");
        step(&mut env, &[RIGHT, STAY], &pool); // step 2: resting
        assert_eq!(env.instance(0).agent(0).x, 1, "{profile}");
    }
}

#[test]
fn moves_need_an_empty_cell_inside_the_grid() {
    let pool = pool();
    let mut params = small(Profile::Clean);
    params.flags.substitute_failed_actions = false;
    let mut env = scenario(
        params,
        &[agent(0, 0, false, RED), agent(1, 0, false, BLUE)],
        &[bush(0, 1, RED, false)],
    );
    // Up and left leave the grid, right is another agent, down is a bush.
    for a in [UP, LEFT, RIGHT, DOWN] {
        step(&mut env, &[a, STAY], &pool);
        assert_eq!(
            (env.instance(0).agent(0).x, env.instance(0).agent(0).y),
            (0, 0),
            "action {a}"
        );
    }
    // Into an empty cell a move succeeds (agent 1 steps right to (2, 0)).
    step(&mut env, &[STAY, RIGHT], &pool);
    assert_eq!(
        (env.instance(0).agent(1).x, env.instance(0).agent(1).y),
        (2, 0)
    );
}

/// Spec §1.5 (corrected): in the reference no move ever succeeds (its action names do not
/// match its move table): into an empty cell the move fails, and with substitution on it costs
/// an attempt and is replaced like any failed action; the agent never changes cell. Clean: the
/// same moves succeed.
#[test]
fn reference_moves_never_succeed() {
    for profile in Profile::ALL {
        for substitute in [false, true] {
            let pool = pool();
            let mut params = small(profile);
            params.flags.substitute_failed_actions = substitute;
            let mut env = scenario(params, &[agent(2, 2, false, RED)], &[]);
            let mut cells = std::collections::BTreeSet::new();
            for a in [RIGHT, DOWN, LEFT, UP, RIGHT, RIGHT] {
                let (_, r, _) = step(&mut env, &[a], &pool);
                assert_eq!(r, vec![0.0], "{profile}: nothing to eat or hit");
                let ag = env.instance(0).agent(0);
                cells.insert((ag.x, ag.y));
            }
            if profile == Profile::Reference {
                assert_eq!(
                    cells.into_iter().collect::<Vec<_>>(),
                    [(2, 2)],
                    "{profile}, substitute {substitute}: never moves"
                );
            } else if !substitute {
                // Right, down, left, up: back at (2, 2); then right twice.
                assert_eq!(
                    (env.instance(0).agent(0).x, env.instance(0).agent(0).y),
                    (4, 2),
                    "{profile}"
                );
                assert!(cells.len() >= 4, "{profile}: {cells:?}");
            }
        }
    }
}

#[test]
fn a_failed_action_is_replaced_by_a_random_other_one() {
    // Boxed in (grid edges, a bush, an agent) and asking to move up: the substitutes drawn from
    // the agent's stream are uniform over the other 8 actions. Over many seeds some substitute is
    // a feasible eat/ripen/interact that pays, which is impossible without substitutes.
    let mut paid = 0;
    for seed in 0..60 {
        let pool = pool();
        let mut params = small(Profile::Reference);
        params.agents = 2;
        params.bushes_init = 0;
        let mut env = fairground_kernel::ah::AhEnv::new(params, 1, seed).unwrap();
        env.set_layout(
            0,
            &[agent(0, 0, false, RED), agent(1, 0, false, BLUE)],
            &[bush(0, 1, RED, false)],
        );
        let (_, r, _) = step(&mut env, &[UP, STAY], &pool);
        paid += (r[0] > 0.0) as u32;
    }
    assert!(paid > 5, "substitutes paid in {paid} of 60 episodes");
}

#[test]
fn bushes_die_after_their_lifespan() {
    let pool = pool();
    let mut params = small(Profile::Reference);
    params.lifespan_steps = 5;
    let mut env = scenario(
        params,
        &[agent(0, 0, false, RED)],
        &[bush(3, 3, RED, false), bush(4, 4, BLUE, true)],
    );
    for t in 0..4 {
        step(&mut env, &[STAY], &pool);
        assert_eq!(env.instance(0).bushes().count(), 2, "alive after step {t}");
    }
    let (obs, _, _) = step(&mut env, &[STAY], &pool);
    assert_eq!(
        env.instance(0).bushes().count(),
        0,
        "dead after step lifespan - 1 = 4"
    );
    assert_eq!(env.instance(0).bush_counts(), [0, 0, 0]);
    assert_eq!(
        &obs[5..9],
        &[0.0, 0.0, 11.0, 11.0],
        "no bushes: distance width + height"
    );
}

#[test]
fn clean_bushes_regrow_after_three_steps_reference_never() {
    for profile in Profile::ALL {
        let pool = pool();
        let mut env = scenario(
            small(profile),
            &[agent(0, 0, false, RED)],
            &[bush(0, 1, RED, true)],
        );
        let mut rewards = vec![];
        for _ in 0..5 {
            rewards.push(step(&mut env, &[EAT], &pool).1[0]);
        }
        match profile {
            // Eaten at step 0, unripe for steps 1 and 2, ripe again by step 3.
            Profile::Clean => assert_eq!(rewards, vec![5.0, 0.0, 0.0, 5.0, 0.0]),
            Profile::Reference => assert_eq!(rewards, vec![5.0, 0.0, 0.0, 0.0, 0.0]),
        }
    }
}

#[test]
fn spontaneous_growth_every_second_step_with_the_linear_colour_rule() {
    let pool = pool();
    let mut params = small(Profile::Reference);
    params.growth_tries = 100;
    params.lifespan_steps = 1000;
    // Only red bushes alive: every new bush is red (probability n_red / (n_red + n_blue) = 1).
    let mut env = scenario(
        params.clone(),
        &[agent(0, 0, false, RED)],
        &[bush(5, 4, RED, false)],
    );
    let mut counts = vec![];
    for _ in 0..7 {
        step(&mut env, &[STAY], &pool);
        counts.push(env.instance(0).bush_counts());
    }
    // Growth after steps 2, 4, 6 (never at step 0).
    let reds: Vec<u16> = counts.iter().map(|c| c[0]).collect();
    assert_eq!(reds, vec![1, 1, 2, 2, 3, 3, 4]);
    assert!(counts.iter().all(|c| c[1] == 0 && c[2] == 0));
    // No coloured bush alive: the new bush is uncoloured ("none").
    let mut env = scenario(params, &[agent(0, 0, false, RED)], &[]);
    for _ in 0..3 {
        step(&mut env, &[STAY], &pool);
    }
    assert_eq!(env.instance(0).bush_counts(), [0, 0, 1]);
}

#[test]
fn episodes_end_reset_and_book_returns_by_group() {
    let pool = pool();
    let mut params = small(Profile::Reference);
    params.episode_steps = 3;
    let mut env = scenario(
        params,
        &[agent(0, 0, false, RED), agent(3, 0, true, BLUE)],
        &[bush(0, 1, RED, true), bush(3, 1, BLUE, false)],
    );
    // Agent 0 eats (5) at step 0; agent 1 (sensitive, blue) ripens its own bush at step 1 (3).
    let script = [[EAT, RIPEN], [STAY, RIPEN], [STAY, STAY]];
    let mut dones = vec![];
    for acts in script {
        let (_, _, d) = step(&mut env, &acts, &pool);
        dones.push(d[0]);
    }
    assert_eq!(dones, vec![0, 0, 1]);
    let inst = env.instance(0);
    assert_eq!(inst.episodes_done(), 1);
    assert_eq!(inst.step_in_episode(), 0, "auto-reset");
    assert_eq!(inst.last_episode_returns(), &[5.0, 3.0]);
    // Groups [NSr, NSb, Sr, Sb].
    assert_eq!(inst.last_episode_group_returns(), [5.0, 0.0, 0.0, 3.0]);
    assert_eq!(inst.group_returns(), [0.0; 4], "new episode starts at zero");
}
