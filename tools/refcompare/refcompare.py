#!/usr/bin/env python3
"""Hold fairground's environments against the reference code's, statistically.

AH (``--env ah``, the default): runs the reference Allelopathic Harvest
(``environments/AllelopaticHarvest/Environment.py`` of a checkout of
gabrielelamalfakcl/fairness-aware-ppo, given by path) under the protocol of
``fairground bench env --env ah --stats``: a fresh environment per episode, seeded, uniform
random actions, spec §1.1's configuration. It measures the same statistics by wrapping the
reference's Player methods (nothing in the checkout is modified).

HS (``--env hs``): runs the reference HospitalSim wrapper (``environments/Hospital/
hospital_pz_env.py``, ``HospitalMAS`` with the test scripts' configuration) one seeded day per
sample, the pending role acting uniformly at random (the wrapper's own fallback), and reads the
same per-day statistics as ``fairground bench env --env hs --stats`` from the simulator's own
records (``escort_wait_times``, ``helper_travel_times``, ``routing_outcomes``, the patients'
ledgers, ...).

Either way it prints the statistics with standard errors over episodes or days and, given a
fairground ``--stats`` JSON line, a comparison table with z-scores.

    python3 tools/refcompare/refcompare.py --reference PATH/TO/fairness-aware-ppo \
        --episodes 300 --steps 1500 --sensitive-fraction 0.5 \
        --fairground <(fairground bench env --env ah --profile reference --stats \
                         --instances 300 --steps 1500 --episode-steps 1500)
    python3 tools/refcompare/refcompare.py --env hs --reference PATH/TO/fairness-aware-ppo \
        --days 1000 --fairground <(fairground bench env --env hs --profile reference --stats \
                                     --instances 100 --days 10)

Each fairground AH instance with ``--steps`` = ``--episode-steps`` plays exactly one episode, so
both sides average over independent episodes; each HS day is a sample on both sides. Requires
numpy (both reference environments import it) and, for HS, gymnasium and pettingzoo (the
wrapper's imports; its plotting module, which needs matplotlib and imageio, is replaced by an
empty module since nothing is drawn). Not part of CI: CI has no reference checkout.
"""

import argparse
import json
import math
import random
import sys

ACTIONS = ["stay", "up", "down", "left", "right", "eat", "change_colour", "interact", "ripen"]
OUTCOMES = ["eat_own", "eat_other", "ripen_own", "ripen_other", "change_colour", "block_other"]
OUTCOME_REWARD = [5, 1, 3, 1, 5, 3]


class Turn:
    """What one player's call of execute_policy_with_action did."""

    def __init__(self):
        self.failed = 0
        self.executed = None
        self.outcome = None


def instrument(env_module):
    """Wrap the reference Player's methods so each turn records its attempts and effect."""
    player = env_module.Player
    current = {}

    def wrap_check(name):
        original = getattr(player, name)

        def check(self, *args, **kwargs):
            ok = original(self, *args, **kwargs)
            if not ok:
                current["turn"].failed += 1
            return ok

        setattr(player, name, check)

    for name in ["can_interact_with_bush", "can_interact_with_player"]:
        wrap_check(name)

    original_move = player.move

    def move(self, environment, direction):
        ok = original_move(self, environment, direction)
        if ok:
            current["turn"].executed = {"up": 1, "down": 2, "left": 3, "right": 4}[direction]
        else:
            current["turn"].failed += 1
        return ok

    player.move = move

    def wrap_effect(name, action, kinds):
        original = getattr(player, name)

        def effect(self, environment):
            r = original(self, environment)
            turn = current["turn"]
            turn.executed = action
            turn.outcome = kinds.get(r)
            return r

        setattr(player, name, effect)

    wrap_effect("eat_bush", 5, {5: 0, 1: 1})
    wrap_effect("ripe_bush", 8, {3: 2, 1: 3})
    wrap_effect("change_bush_color", 6, {5: 4})
    wrap_effect("interact_with_nearby_player", 7, {3: 5})
    return current


def play_episode(env_module, current, seed, steps, sensitive_fraction):
    """One seeded episode of uniform random play; its statistics (one sample)."""
    random.seed(seed)
    env = env_module.Environment(
        x_dim=25, y_dim=15, max_steps=steps, num_players=40, num_bushes=60,
        red_player_percentage=0.5, blue_player_percentage=0.5,
        red_bush_percentage=0.5, blue_bush_percentage=0.5,
        disability_percentage=sensitive_fraction, max_lifespan=120, regrowth_rate=3,
        spont_growth_rate=2,
    )
    env.reset()
    regrowth = sys.modules[env_module.__name__.rsplit(".", 1)[0] + ".BerryRegrowth"]
    regrowth_fn = regrowth.LinearRegrowth().regrowth
    actions_rng = random.Random(seed ^ 0x5EED)
    n = len(env.players)
    start = [(p.x, p.y) for p in env.players]
    moved = [False] * n
    c = {k: 0 for k in ["turns", "frozen", "resting", "substituted", "exhausted", "bushes", "ripe"]}
    executed = [0] * len(ACTIONS)
    outcomes = [0] * len(OUTCOMES)
    reward = [0.0, 0.0]
    orig_execute = env_module.Player.execute_policy_with_action

    def execute(self, environment, action):
        turn = Turn()
        current["turn"] = turn
        frozen = self.is_obstacolated
        resting = (not frozen) and self.has_disability and (self.move_counter + 1) % 2 != 0
        r = orig_execute(self, environment, action)
        c["turns"] += 1
        if frozen:
            c["frozen"] += 1
        elif resting:
            c["resting"] += 1
        elif turn.executed is None and turn.failed >= 3:
            c["exhausted"] += 1
        else:
            executed[turn.executed if turn.executed is not None else 0] += 1
        if not frozen and not resting and turn.failed > 0:
            c["substituted"] += 1
        if turn.outcome is not None:
            outcomes[turn.outcome] += 1
        return r

    env_module.Player.execute_policy_with_action = execute
    try:
        for _ in range(steps):
            actions = [actions_rng.randrange(9) for _ in range(n)]
            _, rewards, _ = env.step(actions, env, 3, regrowth_fn, 120, 2)
            for i, p in enumerate(env.players):
                if (p.x, p.y) != start[i]:
                    moved[i] = True
                reward[0] += float(rewards[i]) * (1.0 if p.has_disability else 0.0)
                reward[1] += float(rewards[i])
            c["bushes"] += len(env.bushes)
            c["ripe"] += sum(1 for b in env.bushes if b.is_ripe)
    finally:
        env_module.Player.execute_policy_with_action = orig_execute
    t = c["turns"]
    sample = {
        "mean_reward_per_agent_step": reward[1] / t,
        "players_moved_mean": float(sum(moved)),
        "frozen_agents_mean": float(sum(1 for p in env.players if p.is_obstacolated)),
        "substituted_fraction": c["substituted"] / t,
        "exhausted_fraction": c["exhausted"] / t,
        "frozen_turn_fraction": c["frozen"] / t,
        "resting_turn_fraction": c["resting"] / t,
        "ripe_fraction_mean": c["ripe"] / c["bushes"] if c["bushes"] else None,
        "sensitive_reward_share": reward[0] / reward[1] if reward[1] > 0 else None,
    }
    for a, name in enumerate(ACTIONS):
        sample["executed_fraction." + name] = executed[a] / t
    for k, name in enumerate(OUTCOMES):
        sample["reward_per_agent_step_by_outcome." + name] = outcomes[k] * OUTCOME_REWARD[k] / t
    return sample


HS_CONFIG = dict(n_clerks=30, n_patients=300, m_nurses=60, k_robots=30, n_triage=30,
                 n_swing_doctors=18, sim_hours=12, gamma=0.99)
HS_ROLES = [("router", "awaiting_routing", "triage_router"),
            ("dispatcher", "awaiting_dispatch", "escort_dispatcher"),
            ("manager", "awaiting_doctor_move", "doctor_manager")]
IMPAIRMENTS = ["none", "low", "high"]
PRIORITIES = ["low", "medium", "high"]
ROUTING = [("perfect", "perfect"), ("backup", "acceptable"), ("wrong", "wrong")]


def hs_module(reference):
    """The reference's HospitalMAS class, its plotting module stubbed (never drawn)."""
    import importlib
    import types

    sys.path.insert(0, reference)
    sys.modules.setdefault("environments.Hospital.visual",
                           types.ModuleType("environments.Hospital.visual"))
    return importlib.import_module("environments.Hospital.hospital_pz_env").HospitalMAS


def mean_or_none(v):
    return sum(v) / len(v) if v else None


def play_day(env, seed):
    """One seeded day of uniform random play; its statistics (one sample)."""
    random.seed(seed)  # patient features and arrival gaps use the global stream
    env.reset(seed=seed)
    rng = random.Random(seed ^ 0x5EED)
    n_swing = env.n_swing
    reward = {name: 0.0 for name, _, _ in HS_ROLES}
    decisions = {name: 0 for name, _, _ in HS_ROLES}
    done = False
    while not done:
        hook = env.sim._hook
        action = {}
        for name, h, agent in HS_ROLES:
            if hook == h:
                decisions[name] += 1
                if agent == "triage_router":
                    action[agent] = rng.randrange(6)
                elif agent == "escort_dispatcher":
                    action[agent] = [rng.randrange(50) for _ in range(20)]
                else:
                    action[agent] = [rng.randrange(7) for _ in range(n_swing)]
        _, rewards, term, _, _ = env.step(action)
        for name, _, agent in HS_ROLES:
            reward[name] += float(rewards.get(agent, 0.0))
        done = term["__all__"]
    sim = env.sim
    finished = [p for p in sim.patients if p.status in ("done", "exited")]
    ledger = sim._patient_rewards

    def ledger_mean(keep):
        return mean_or_none([ledger.get(p.id, 0.0) for p in finished if keep(p)])

    sample = {}
    for name, _, _ in HS_ROLES:
        sample["reward_per_day." + name] = reward[name]
        sample["decisions_per_day." + name] = float(decisions[name])
    exited = sum(1 for p in sim.patients if p.status == "exited")
    sample["patients_finished"] = float(len(finished))
    sample["patients_exited"] = float(exited)
    sample["patients_done_not_exited"] = float(len(finished) - exited)
    sample["escort_wait_mean"] = mean_or_none(sim.escort_wait_times)
    sample["escort_travel_mean"] = mean_or_none(sim.helper_travel_times)
    sample["escorts_per_day"] = float(len(sim.escort_wait_times))
    sample["dispatches_per_day"] = float(len(sim.helper_travel_times))
    sample["ward_wait_mean"] = mean_or_none(sim.ward_wait_times)
    routed = len(sim.routing_outcomes)
    for name, tag in ROUTING:
        sample["routing_fraction." + name] = (sim.routing_outcomes.count(tag) / routed
                                              if routed else None)
    sample["swing_moves"] = float(sim.doctor_moves_count)
    for k in IMPAIRMENTS:
        sample["ledger_mean_by_impairment." + k] = ledger_mean(lambda p: p.true_impairment == k)
    for k in PRIORITIES:
        sample["ledger_mean_by_priority." + k] = ledger_mean(lambda p: p.true_priority == k)
    none = ledger_mean(lambda p: p.true_impairment == "none")
    impaired = ledger_mean(lambda p: p.true_impairment != "none")
    dp = none - impaired if none is not None and impaired is not None else None
    sample["ledger_dp"] = dp
    sample["ledger_dp_abs"] = abs(dp) if dp is not None else None
    return sample


def summarise(samples):
    """Per statistic, (mean, standard error) over the samples that have it."""
    out = {}
    for key in samples[0]:
        v = [s[key] for s in samples if s[key] is not None]
        if not v:
            continue
        m = sum(v) / len(v)
        se = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v)) if len(v) > 1 else 0.0
        out[key] = (m, se)
    return out


def fairground_stats(line):
    """The same statistics from a `bench env --stats` JSON line."""
    s = line["stats"]
    out = {}
    for key, value in s.items():
        if isinstance(value, dict) and "mean" in value:
            out[key] = (value["mean"], value["se"])
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, dict) and "mean" in v:
                    out[key + "." + sub] = (v["mean"], v["se"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", choices=["ah", "hs"], default="ah")
    ap.add_argument("--reference", help="path of a fairness-aware-ppo checkout")
    ap.add_argument("--saved", help="a file holding this script's --json output (instead of running)")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--days", type=int, default=1000, help="HS: days to simulate")
    ap.add_argument("--sensitive-fraction", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fairground", help="a file holding `fairground bench env --stats` output")
    ap.add_argument("--json", action="store_true", help="print the reference's statistics as JSON")
    args = ap.parse_args()
    if not 0.0 <= args.sensitive_fraction <= 1.0:
        sys.exit("error: --sensitive-fraction: %s is not in 0..=1" % args.sensitive_fraction)
    if args.saved:
        with open(args.saved) as f:
            ref = {k: (v["mean"], v["se"]) for k, v in json.loads(f.readline()).items()}
    elif args.reference and args.env == "hs":
        if args.days < 2:
            sys.exit("error: --days: %d is not in 2.. (a standard error needs two)" % args.days)
        env = hs_module(args.reference)(verbose=False, **HS_CONFIG)
        samples = []
        for d in range(args.days):
            samples.append(play_day(env, args.seed * 1_000_003 + d))
            print("day %d/%d" % (d + 1, args.days), file=sys.stderr, end="\r")
        print(file=sys.stderr)
        ref = summarise(samples)
    elif args.reference:
        sys.path.insert(0, args.reference)
        import importlib

        env_module = importlib.import_module("environments.AllelopaticHarvest.Environment")
        current = instrument(env_module)
        samples = []
        for e in range(args.episodes):
            samples.append(play_episode(env_module, current, args.seed * 1_000_003 + e,
                                        args.steps, args.sensitive_fraction))
            print("episode %d/%d" % (e + 1, args.episodes), file=sys.stderr, end="\r")
        print(file=sys.stderr)
        ref = summarise(samples)
    else:
        sys.exit("error: --reference: give a checkout's path (or --saved FILE)")
    if args.json:
        print(json.dumps({k: {"mean": m, "se": se} for k, (m, se) in ref.items()}))
    if args.fairground:
        with open(args.fairground) as f:
            fg = fairground_stats(json.loads(f.readline()))
        print("| statistic | reference (± se) | fairground (± se) | z |")
        print("|---|---|---|---|")
        for key, (m, se) in ref.items():
            if key not in fg:
                continue
            fm, fse = fg[key]
            if fse is None:
                z = "—"
                fg_cell = "%.6g" % fm
            else:
                s = math.sqrt(se ** 2 + fse ** 2)
                z = "%.2f" % ((m - fm) / s) if s > 0 else ("0" if m == fm else "inf")
                fg_cell = "%.6g ± %.3g" % (fm, fse)
            print("| %s | %.6g ± %.3g | %s | %s |" % (key, m, se, fg_cell, z))
    elif not args.json:
        for key, (m, se) in ref.items():
            print("%-45s %.6g ± %.3g" % (key, m, se))


if __name__ == "__main__":
    main()
