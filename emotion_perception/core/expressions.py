"""The package's emotions in ROS4HRI (REP-155) terms, without ROS: the `hri_msgs/Expression` constant of each
label, a valence/arousal point of each label from a published table, the valence and arousal of a face's scores,
face ids, and normalised regions of interest.

Valence and arousal: the NRC Valence, Arousal, and Dominance Lexicon v1 (S. M. Mohammad, "Obtaining Reliable
Human Ratings of Valence, Arousal, and Dominance for 20,000 English Words", ACL 2018): the ratings, on [0, 1],
of the words anger, contempt, disgust, fear, happiness, sadness and surprise, mapped to the message's [-1, 1] by
2x - 1. Neutral is the origin of the valence/arousal plane (the centre of Russell's 1980 circumplex).
"""

from __future__ import annotations

from collections.abc import Mapping

from emotion_perception.core.faces import FaceBox

# label -> the value of an hri_msgs/msg/Expression constant. The message has no contempt: contempt, a rejection
# emotion like disgust, is published as DISGUSTED (its valence and arousal stay its own).
HRI_EXPRESSIONS: dict[str, str] = {
    "anger": "angry",          # Expression.ANGRY
    "contempt": "disgusted",   # Expression.DISGUSTED
    "disgust": "disgusted",    # Expression.DISGUSTED
    "fear": "scared",          # Expression.SCARED
    "happy": "happy",          # Expression.HAPPY
    "neutral": "neutral",      # Expression.NEUTRAL
    "sadness": "sad",          # Expression.SAD
    "surprise": "surprised",   # Expression.SURPRISED
}

# label -> (valence, arousal) as published on [0, 1] (NRC VAD lexicon v1, the word in brackets); neutral: centre.
NRC_VAD: dict[str, tuple[float, float]] = {
    "anger": (0.167, 0.865),      # anger
    "contempt": (0.206, 0.635),   # contempt
    "disgust": (0.052, 0.775),    # disgust
    "fear": (0.073, 0.840),       # fear
    "happy": (0.960, 0.732),      # happiness
    "neutral": (0.5, 0.5),        # the circumplex's centre
    "sadness": (0.052, 0.288),    # sadness
    "surprise": (0.875, 0.875),   # surprise
}

# label -> (valence, arousal) on [-1, 1], the range of hri_msgs/Expression
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    label: (round(2 * valence - 1, 3), round(2 * arousal - 1, 3)) for label, (valence, arousal) in NRC_VAD.items()
}

FACE_ID_PREFIX = "f"  # REP-155 ids are strings: f1, f2... from the tracker's integer ids


def hri_expression(label: str) -> str:
    """The Expression constant of a label; an unknown label is passed through."""
    return HRI_EXPRESSIONS.get(label, label)


def valence_arousal(scores: Mapping[str, float]) -> tuple[float, float]:
    """The scores' average of the labels' circumplex points, each weighted by its score (labels without a point
    are left out); (0, 0) when no score has one."""
    known = {label: score for label, score in scores.items() if label in CIRCUMPLEX and score > 0}
    total = sum(known.values())
    if total <= 0:
        return 0.0, 0.0
    valence = sum(score * CIRCUMPLEX[label][0] for label, score in known.items()) / total
    arousal = sum(score * CIRCUMPLEX[label][1] for label, score in known.items()) / total
    return valence, arousal


def face_id(track_id: int) -> str:
    """The REP-155 id of a followed face: stable while the tracker follows it."""
    return f"{FACE_ID_PREFIX}{track_id}"


def normalized_roi(box: FaceBox, width: int, height: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of a box as fractions of the image, clipped to [0, 1]."""
    def clip(value: float) -> float:
        return min(max(value, 0.0), 1.0)

    return clip(box.left / width), clip(box.top / height), clip(box.right / width), clip(box.bottom / height)
