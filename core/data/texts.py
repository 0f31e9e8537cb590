"""Text labels for imported clips: from the sources' own labels, or from the user's file.

Sources, in order of precedence for a clip file `X.ext`:
1. the user's texts file (`--texts FILE`, CSV with columns file,text or JSON {file: [texts]});
2. a sidecar `X.txt` next to the clip (one text per line);
3. Bandai-Namco's JSON label `X.json` ({"content": i, "style": j}, names in ../cfg/*.txt);
4. DeepMimic clip names (humanoid3d_<name>.txt);
5. CMU descriptions of the clips we know.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from ..errors import MotionClipError, read_json


class TextsError(MotionClipError):
    pass


# Bandai-Namco contents: several verb phrases each ("a person ..." completes them).
BANDAI_CONTENT = {
    "walk": ["walks", "walks forward", "takes a walk", "is walking"],
    "run": ["runs", "runs forward", "jogs", "is running"],
    "dash": ["dashes forward", "sprints", "runs fast"],
    "walk-back": ["walks backwards", "steps backwards", "walks back"],
    "walk-left": ["walks to the left", "walks sideways to the left", "steps to the left"],
    "walk-right": ["walks to the right", "walks sideways to the right", "steps to the right"],
    "bow": ["bows", "takes a bow", "bows politely"],
    "bye": ["waves goodbye", "waves a hand to say bye", "says goodbye with a wave"],
    "guide": ["gestures to show the way", "points the way", "guides someone with a hand gesture"],
    "byebye": ["waves both hands goodbye", "waves goodbye with both arms", "waves bye-bye"],
    "respond": ["responds with a gesture", "reacts and answers", "gives a response"],
    "call": ["calls someone over", "beckons someone", "waves someone over"],
    "punch": ["punches", "throws a punch", "punches forward"],
    "kick": ["kicks", "kicks forward", "does a kick"],
    "slash": ["slashes with a sword", "swings a blade", "makes a slashing motion"],
    "dance-long": ["dances", "performs a long dance", "dances for a while"],
    "dance-short": ["dances briefly", "does a short dance", "dances"],
    # dataset 2
    "walk-turn-left": ["walks forward and turns to the left", "walks and turns left", "turns left while walking",
                       "walks, then makes a left turn"],
    "walk-turn-right": ["walks forward and turns to the right", "walks and turns right", "turns right while walking",
                        "walks, then makes a right turn"],
    "wave-both-hands": ["waves both hands", "waves with both hands", "waves both arms above the head",
                        "waves hello with both hands"],
    "wave-left-hand": ["waves with the left hand", "waves the left hand", "waves hello with the left hand",
                       "raises the left hand and waves"],
    "wave-right-hand": ["waves with the right hand", "waves the right hand", "waves hello with the right hand",
                        "raises the right hand and waves"],
    "raise-up-both-hands": ["raises both hands above the head", "lifts both arms up", "puts both hands up in the air",
                            "raises both arms over the head"],
    "raise-up-left-hand": ["raises the left hand", "lifts the left arm up", "puts the left hand up in the air",
                           "raises the left arm above the head"],
    "raise-up-right-hand": ["raises the right hand", "lifts the right arm up", "puts the right hand up in the air",
                            "raises the right arm above the head"],
}
# Bandai-Namco styles: adverbial phrases ("" for the neutral style).
BANDAI_STYLE = {
    "normal": [""],
    "happy": ["happily", "cheerfully", "in a happy way"],
    "sad": ["sadly", "in a sad way", "gloomily"],
    "angry": ["angrily", "in an angry way", "furiously"],
    "proud": ["proudly", "with pride", "confidently"],
    "not-confident": ["timidly", "without confidence", "shyly"],
    "masculinity": ["in a masculine way", "manfully", "in a macho way"],
    "feminine": ["in a feminine way", "gracefully", "elegantly"],
    "childish": ["childishly", "like a child", "playfully"],
    "old": ["like an old person", "in an elderly way", "slowly like an old man"],
    "tired": ["tiredly", "wearily", "in a tired way"],
    "active": ["energetically", "actively", "with lots of energy"],
    "musical": ["like in a musical", "theatrically", "in a musical style"],
    "giant": ["like a giant", "heavily like a giant", "with big heavy movements"],
    "chimpira": ["like a thug", "in a thuggish way", "with a swagger"],
    # dataset 2
    "elderly": ["like an elderly person", "like an old person", "slowly and stiffly"],
    "exhausted": ["in an exhausted way", "wearily", "as if exhausted"],
    "masculine": ["in a masculine way", "manfully", "in a macho way"],
    "youthful": ["youthfully", "in a youthful way", "with youthful energy"],
}
SUBJECTS = ["a person", "someone", "a man", "a woman", "the person"]

DEEPMIMIC = {
    "backflip": ["a person does a backflip", "someone flips backwards", "a person performs a back somersault"],
    "cartwheel": ["a person does a cartwheel", "someone cartwheels sideways", "a person turns a cartwheel"],
    "crawl": ["a person crawls on hands and knees", "someone crawls forward", "a person crawls on the floor"],
    "dance_a": ["a person dances", "someone dances energetically", "a person does a dance"],
    "dance_b": ["a person dances", "someone dances in place", "a person performs a dance move"],
    "getup_facedown": ["a person gets up from lying face down", "someone stands up from the ground",
                       "a person lying on their stomach gets up"],
    "getup_faceup": ["a person gets up from lying on their back", "someone stands up from the floor",
                     "a person lying on their back gets up"],
    "jump": ["a person jumps", "someone jumps forward", "a person leaps"],
    "kick": ["a person kicks", "someone kicks forward", "a person does a kick"],
    "punch": ["a person punches", "someone throws a punch", "a person punches forward"],
    "roll": ["a person rolls on the ground", "someone does a forward roll", "a person tumbles"],
    "run": ["a person runs", "someone runs forward", "a person jogs"],
    "spin": ["a person spins around", "someone turns around in place", "a person spins"],
    "spinkick": ["a person does a spinning kick", "someone spins and kicks", "a person performs a spin kick"],
    "walk": ["a person walks", "someone walks forward", "a person takes a walk"],
}

# CMU Graphics Lab mocap: the database's own descriptions of the clips shipped with
# Debian's assimp-testmodels (add more with --texts).
CMU = {
    "01_01": ["playground - forward jumps, turn around", "a person jumps forward several times and turns around"],
    "01_03": ["playground - climb, hang, swing", "a person climbs, hangs and swings on a playground"],
}


def _label_words(label: str) -> str:
    """A label as words: "raise-up_right-hand" -> "raise up right hand"."""
    return " ".join(w for w in re.split(r"[-_\s]+", label.strip().lower()) if w)


def content_phrases(content: str) -> list[str]:
    """Verb phrases for a content label; a label we have no phrasings for is used as words
    ("kick-high" -> "does a kick high"), so that a user's own labelled folder imports too."""
    if content in BANDAI_CONTENT:
        return BANDAI_CONTENT[content]
    words = _label_words(content)
    if not words:
        raise TextsError(f"empty Bandai-Namco content label {content!r}")
    return [f"performs the motion '{words}'", f"does {words}"]


def style_phrases(style: str) -> list[str]:
    """Adverbial phrases for a style label; unknown styles read "in a <style> way"."""
    if style in BANDAI_STYLE:
        return BANDAI_STYLE[style]
    words = _label_words(style)
    return [f"in a {words} way", f"in a {words} style"] if words else [""]


def bandai_texts(content: str, style: str, n: int = 6, seed: str = "") -> list[str]:
    """Several natural phrasings of a Bandai-Namco (content, style) label, deterministic per seed."""
    rng = random.Random(f"{seed}:{content}:{style}")
    combos = [(s, v, a) for s in SUBJECTS for v in content_phrases(content) for a in style_phrases(style)]
    rng.shuffle(combos)
    out: list[str] = []
    for s, v, a in combos:
        t = f"{s} {v} {a}".strip()
        if t not in out:
            out.append(t)
        if len(out) == n:
            break
    return out


def _bandai_label(path: Path) -> tuple[str, str] | None:
    label = path.with_suffix(".json")
    if not label.is_file():
        return None
    try:
        data = json.loads(label.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if not (isinstance(data, dict) and "content" in data and "style" in data):
        return None
    cfg = path.parent.parent / "cfg"
    try:
        contents = [ln.strip() for ln in (cfg / "content_label.txt").read_text().splitlines() if ln.strip()]
        styles = [ln.strip() for ln in (cfg / "style_label.txt").read_text().splitlines() if ln.strip()]
        content = _without_shared_prefix(contents)[int(data["content"])]
        style = _without_shared_prefix(styles)[int(data["style"])]
    except (OSError, IndexError, ValueError) as exc:
        raise TextsError(f"{label}: label {data} does not match the names in {cfg}/content_label.txt and "
                         f"style_label.txt ({exc})") from None
    return content, style


def _without_shared_prefix(names: list[str]) -> list[str]:
    """Label names without the dataset prefix they all share: "dataset-2_wave-right-hand" -> "wave-right-hand"."""
    prefixes = {n.split("_", 1)[0] for n in names if "_" in n}
    if len(prefixes) == 1 and all("_" in n for n in names):
        return [n.split("_", 1)[1] for n in names]
    return names


def load_user_texts(path: str | Path) -> dict[str, list[str]]:
    """A user's texts file: CSV (columns `file`, `text`; several rows per file allowed) or JSON
    ({file: text or [texts]}). Keys match clip files by stem or by name."""
    path = Path(path)
    if not path.is_file():
        raise TextsError(f"texts file not found: {path}")
    out: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        data = read_json(path, TextsError)
        if not isinstance(data, dict):
            raise TextsError(f"{path}: expected a JSON object mapping file names to a text or a list of texts")
        for k, v in data.items():
            texts = [v] if isinstance(v, str) else v
            if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts) or not texts:
                raise TextsError(f"{path}: entry {k!r} must be a non-empty text or list of texts")
            out[Path(k).stem] = [t.strip() for t in texts]
        return out
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "text"} <= set(reader.fieldnames):
            raise TextsError(f"{path}: a texts CSV needs a header with columns 'file' and 'text' "
                             f"(found {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            if not (row.get("file") or "").strip() or not (row.get("text") or "").strip():
                raise TextsError(f"{path}: line {line}: both 'file' and 'text' must be filled in")
            out.setdefault(Path(row["file"].strip()).stem, []).append(row["text"].strip())
    return out


def texts_for(path: Path, user: dict[str, list[str]] | None = None) -> tuple[list[str], dict[str, str]]:
    """Texts for a clip file and the labels they came from (e.g. {"action": "walk", "style": "happy"})."""
    stem = path.stem
    if user and stem in user:
        return user[stem], {"text_source": "user"}
    sidecar = path.with_suffix(".txt")
    if path.suffix.lower() != ".txt" and sidecar.is_file():
        lines = [ln.strip() for ln in sidecar.read_text().splitlines() if ln.strip()]
        if lines:
            return lines, {"text_source": "sidecar"}
    label = _bandai_label(path) if path.suffix.lower() == ".bvh" else None
    if label:
        content, style = label
        return bandai_texts(content, style, seed=stem), {"text_source": "bandai-namco", "action": content, "style": style}
    m = re.fullmatch(r"humanoid3d_(.+)", stem)
    if m and m.group(1) in DEEPMIMIC:
        return list(DEEPMIMIC[m.group(1)]), {"text_source": "deepmimic", "action": m.group(1)}
    if stem in CMU:
        return list(CMU[stem]), {"text_source": "cmu"}
    return [], {}


def mirror_text(text: str) -> str:
    """Swap left and right in a text (for mirrored motions), keeping capitalisation."""
    def swap(m: re.Match) -> str:
        w = m.group(0)
        r = {"left": "right", "right": "left"}[w.lower()]
        return r.capitalize() if w[0].isupper() else r
    return re.sub(r"\b(left|right)\b", swap, text, flags=re.IGNORECASE)
