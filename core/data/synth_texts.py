"""Synthetic motions: the phrasings of each action (`TEXTS`), filled from the clip's own parameters
so "slowly", "left" and "right" in a text always match the motion."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .synth_clip import _Clip


# Phrasings per action. Fields: who, their, them, themself, adv ("slowly " / "quickly " / ""), adv_end
# (" slowly" / ...), pace, side, dir, n ("twice"), num ("two"), s (plural ending), plus what the action
# sets (turn, how, first, second). At most two phrasings per action lack a tempo field, so with three or
# more per clip a slow or quick clip always says so.
TEXTS: dict[str, list[str]] = {
    "walk": ["{who} {adv}walks {dir}", "{who} is walking {dir}{adv_end}", "{who} takes a few steps {dir}{adv_end}",
             "{who} walks {dir} at a {pace} pace", "walking {dir}, {who} moves at a {pace} pace"],
    "run": ["{who} {adv}runs {dir}", "{who} jogs {dir}{adv_end}", "{who} is running {dir} at a {pace} pace",
            "{who} breaks into a run, heading {dir}{adv_end}"],
    "jump_in_place": ["{who} {adv}jumps up and down in place", "{who} jumps on the spot {n}",
                      "{who} hops straight up with both feet {n}", "standing still, {who} jumps up {n}{adv_end}"],
    "jump_forward": ["{who} {adv}jumps forward", "{who} leaps forward with both feet {n}",
                     "{who} does a standing long jump{adv_end}", "{who} jumps ahead {n}"],
    "squat": ["{who} {adv}squats down and stands back up", "{who} does squats{adv_end}", "{who} squats {n}",
              "{who} bends {their} knees and crouches down{adv_end}"],
    "wave": ["{who} {adv}waves with {their} {side} hand", "{who} waves hello using the {side} arm",
             "{who} raises {their} {side} hand and waves{adv_end}", "{who} greets someone by waving the {side} hand",
             "with {their} {side} arm up, {who} waves{adv_end}"],
    "kick": ["{who} {adv}kicks with {their} {side} leg", "{who} kicks forward with the {side} foot",
             "{who} does a front kick with {their} {side} leg{adv_end}", "{who} kicks {n} using the {side} foot"],
    "punch": ["{who} {adv}punches with {their} {side} fist", "{who} throws a {side} punch{adv_end}",
              "{who} jabs forward with the {side} hand {n}", "{who} punches straight ahead using {their} {side} arm"],
    "bow": ["{who} {adv}bows", "{who} bows forward politely{adv_end}", "{who} takes a bow{adv_end}",
            "{who} bends forward at the waist and straightens up"],
    "turn": ["{who} {adv}{turn} to the {side}", "{who} {turn} to {their} {side} in place{adv_end}",
             "standing in place, {who} {turn} toward the {side}", "{who} rotates {their} body to the {side}{adv_end}"],
    "clap": ["{who} {adv}claps {their} hands", "{who} is clapping{adv_end}", "{who} applauds{adv_end}",
             "{who} claps {their} hands together in front of {their} chest"],
    "raise_both_arms": ["{who} {adv}raises both arms {how}", "{who} lifts both hands {how}{adv_end}",
                        "{who} puts both arms up {how} and lowers them again", "both of {their} arms go up {how}"],
    "raise_one_arm": ["{who} {adv}raises {their} {side} arm", "{who} lifts the {side} hand above {their} head{adv_end}",
                      "{who} puts {their} {side} arm up in the air", "{who} reaches up with the {side} hand{adv_end}"],
    "jumping_jacks": ["{who} {adv}does jumping jacks", "{who} performs jumping jacks{adv_end}",
                      "{who} does {num} jumping jack{s}", "{who} jumps while spreading arms and legs{adv_end}"],
    "sit_down": ["{who} {adv}sits down", "{who} sits down on a chair{adv_end}", "{who} lowers {themself} into a seat",
                 "{who} goes from standing to sitting{adv_end}"],
    "stand_up": ["{who} {adv}stands up", "{who} gets up from a chair{adv_end}", "{who} rises from a seated position",
                 "{who} goes from sitting to standing{adv_end}"],
    "side_step": ["{who} {adv}steps sideways to the {side}", "{who} side-steps to {their} {side}{adv_end}",
                  "{who} shuffles to the {side}", "{who} takes {num} step{s} to the {side}{adv_end}"],
    "march": ["{who} {adv}marches in place", "{who} marches on the spot{adv_end}",
              "{who} lifts {their} knees high, marching in place", "{who} steps in place raising the knees{adv_end}"],
    "arm_circles": ["{who} {adv}circles {their} arms {dir}", "{who} makes {dir} circles with both arms{adv_end}",
                    "{who} holds {their} arms out to the sides and rotates them {dir}",
                    "{who} does arm circles {dir}{adv_end}"],
    "look_around": ["{who} {adv}looks around", "{who} looks to the {first} and then to the {second}{adv_end}",
                    "{who} turns {their} head {first}, then {second}", "{who} glances {first} and {second}{adv_end}"],
    "nod": ["{who} {adv}nods", "{who} nods {their} head{adv_end}", "{who} nods yes", "{who} nods in agreement {n}"],
    "shake_head": ["{who} {adv}shakes {their} head", "{who} shakes {their} head no{adv_end}",
                   "{who} turns {their} head from side to side", "{who} disagrees by shaking {their} head{adv_end}"],
    "side_bend": ["{who} {adv}bends {their} upper body to the {side}", "{who} leans sideways to the {side}{adv_end}",
                  "{who} does a side stretch to the {side}", "{who} bends to the {side} with one arm overhead"],
    "throw": ["{who} {adv}throws something with {their} {side} hand", "{who} hurls an object with the {side} hand",
              "{who} makes a throwing motion with {their} {side} arm{adv_end}",
              "{who} throws a ball overhand using the {side} arm"],
    "hop": ["{who} {adv}hops on {their} {side} foot", "{who} jumps up and down on the {side} leg",
            "balancing on the {side} leg, {who} hops {n}", "{who} hops{adv_end} on one leg, the {side} one"],
}
_SUBJECTS = (("a person", "their", "them", "themself"), ("someone", "their", "them", "themself"),
             ("a man", "his", "him", "himself"), ("a woman", "her", "her", "herself"),
             ("the person", "their", "them", "themself"), ("a human", "their", "them", "themself"))
_DIRS = {"forward": "forward", "backward": "backward", "left": "forward, curving to the left",
         "right": "forward, curving to the right"}
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SLOW, FAST = 0.85, 1.2  # tempo below / above which texts say "slowly" / "quickly"


def _counts(n: int) -> dict[str, str]:
    """Text fields for a count: n ("twice"), num ("two"), s (plural ending)."""
    num = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    return {"n": {1: "once", 2: "twice"}.get(n, f"{num} times"), "num": num, "s": "" if n == 1 else "s"}


def _texts(action: str, c: _Clip, k: int) -> list[str]:
    adv = "slowly" if c.tempo < SLOW else "quickly" if c.tempo > FAST else ""
    base = {"adv": adv + " " if adv else "", "adv_end": " " + adv if adv else "", "side": c.side,
            "pace": {"slowly": "slow", "quickly": "fast"}.get(adv, "steady"), "dir": _DIRS.get(c.direction or "", ""),
            "n": "", "num": "", "s": "s", **c.fields}
    out = []
    for i in c.rng.choice(len(TEXTS[action]), size=min(k, len(TEXTS[action])), replace=False):
        who, their, them, themself = _SUBJECTS[c.rng.integers(len(_SUBJECTS))]
        f = dict(base, who=who, their=their, them=them, themself=themself)
        s = TEXTS[action][i].format(**f)
        s = s.format(**f) if "{" in s else s  # fields may hold pronouns themselves
        out.append(" ".join(s.split()))
    return out
