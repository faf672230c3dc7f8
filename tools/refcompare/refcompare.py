#!/usr/bin/env python3
"""Hold fairground's AH environment against the reference code's, statistically.

Runs the reference Allelopathic Harvest (``environments/AllelopaticHarvest/Environment.py`` of a
checkout of gabrielelamalfakcl/fairness-aware-ppo, given by path) under the protocol of
``fairground bench env --env ah --stats``: a fresh environment per episode, seeded, uniform
random actions, spec §1.1's configuration. It measures the same statistics by wrapping the
reference's Player methods (nothing in the checkout is modified), prints them with standard
errors over episodes, and, given a fairground ``--stats`` JSON line, a comparison table with
z-scores.

    python3 tools/refcompare/refcompare.py --reference PATH/TO/fairness-aware-ppo \
        --episodes 300 --steps 1500 --sensitive-fraction 0.5 \
        --fairground <(fairground bench env --env ah --profile reference --stats \
                         --instances 300 --steps 1500 --episode-steps 1500)

Each fairground instance with ``--steps`` = ``--episode-steps`` plays exactly one episode, so
both sides average over independent episodes. Requires numpy (the reference imports it). Not
part of CI: CI has no reference checkout.
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
    ap.add_argument("--reference", help="path of a fairness-aware-ppo checkout")
    ap.add_argument("--saved", help="a file holding this script's --json output (instead of running)")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--steps", type=int, default=1500)
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
                fg_cell = "%.4f" % fm
            else:
                s = math.sqrt(se ** 2 + fse ** 2)
                z = "%.2f" % ((m - fm) / s) if s > 0 else ("0" if m == fm else "inf")
                fg_cell = "%.4f ± %.4f" % (fm, fse)
            print("| %s | %.4f ± %.4f | %s | %s |" % (key, m, se, fg_cell, z))
    elif not args.json:
        for key, (m, se) in ref.items():
            print("%-45s %.4f ± %.4f" % (key, m, se))


if __name__ == "__main__":
    main()
