"""Procedural glyph and shape images with captions that describe them.

Classes (:data:`ALL_CLASSES`): the digits ``0``-``9``, the lowercase letters
``a``-``z`` (drawn with OpenCV's Hershey vector fonts) and simple shapes
(:data:`SHAPES`). :func:`sample_params` draws the look of one instance (font,
italic slant, stroke, size, tilt, position, filled or outlined shape,
intensities); :func:`render` draws it; :func:`caption` describes it in words,
e.g. "a small bold italic letter k, tilted left, at the top left, in a serif
font".

Why captions with attributes: a caption that only names the class ("the letter
k") maps every instance of a class to one text embedding, so a CLIP trained on
these images collapses each class to one point and instance-level losses (the
paper's L_ct and L_kl compare instances) become ill-posed. Describing size,
stroke, tilt, position and font keeps instances apart (paper-method.md
section 6). :func:`class_prompt` gives the plain class prompt ("the letter k",
"the digit 3", "a star shape") for zero-shot evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DIGITS: tuple[str, ...] = tuple("0123456789")
LETTERS: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "arrow")
ALL_CLASSES: tuple[str, ...] = DIGITS + LETTERS + SHAPES
#: Named class subsets accepted wherever a class list is expected.
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ALL_CLASSES, "glyphs": DIGITS + LETTERS, "digits": DIGITS, "letters": LETTERS, "shapes": SHAPES,
}

#: Hershey fonts used for glyphs: name -> (OpenCV font, words for the caption).
FONTS: dict[str, tuple[int, str]] = {
    "simplex": (cv2.FONT_HERSHEY_SIMPLEX, "sans-serif"),
    "duplex": (cv2.FONT_HERSHEY_DUPLEX, "double-line sans-serif"),
    "complex": (cv2.FONT_HERSHEY_COMPLEX, "serif"),
    "triplex": (cv2.FONT_HERSHEY_TRIPLEX, "triple-line serif"),
    "script_simplex": (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, "handwritten"),
    "script_complex": (cv2.FONT_HERSHEY_SCRIPT_COMPLEX, "calligraphic"),
}

# Shape outlines on the unit circle, x right, y down, pointing up / right unrotated.
_STAR = [(np.cos(a), np.sin(a)) for a in np.pi * (np.arange(10) / 5.0 - 0.5)]
_SHAPE_POINTS: dict[str, np.ndarray] = {
    "square": np.array([(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)]),
    "triangle": np.array([(0.0, -1.0), (0.87, 0.5), (-0.87, 0.5)]),
    "star": np.array([(x * (1.0 if i % 2 == 0 else 0.42), y * (1.0 if i % 2 == 0 else 0.42))
                      for i, (x, y) in enumerate(_STAR)]),
    "cross": np.array([(-0.3, -1.0), (0.3, -1.0), (0.3, -0.3), (1.0, -0.3), (1.0, 0.3), (0.3, 0.3),
                       (0.3, 1.0), (-0.3, 1.0), (-0.3, 0.3), (-1.0, 0.3), (-1.0, -0.3), (-0.3, -0.3)]),
    "diamond": np.array([(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]),
    "hexagon": np.array([(np.cos(a), np.sin(a)) for a in np.pi * np.arange(6) / 3.0]),
    "arrow": np.array([(-1.0, -0.25), (0.2, -0.25), (0.2, -0.65), (1.0, 0.0), (0.2, 0.65), (0.2, 0.25),
                       (-1.0, 0.25)]),
}

_ITALIC_SHEAR = 0.25  #: x shift per pixel of height above the glyph centre
_TILT_UPRIGHT_DEG = 7.0  #: tilts below this are described as upright
_SUBPIXEL_BITS = 4  #: fixed-point bits of shape vertices (cv2 ``shift``)


def class_prompt(name: str) -> str:
    """The plain prompt of a class: "the digit 3", "the letter k", "a star shape"."""
    if name in DIGITS:
        return f"the digit {name}"
    if name in LETTERS:
        return f"the letter {name}"
    if name in SHAPES:
        return f"a {name} shape"
    raise ValueError(f"unknown class {name!r}; classes are digits, lowercase letters and {', '.join(SHAPES)}")


def resolve_classes(classes: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Class names from a group name (:data:`CLASS_GROUPS`) or an explicit list (order kept, checked)."""
    if isinstance(classes, str):
        if classes not in CLASS_GROUPS:
            raise ValueError(f"unknown class group {classes!r}; groups: {', '.join(CLASS_GROUPS)} (or a list)")
        return CLASS_GROUPS[classes]
    names = tuple(str(c) for c in classes)
    unknown = [c for c in names if c not in ALL_CLASSES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: digits, lowercase letters, {', '.join(SHAPES)}")
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"classes must be a non-empty list without duplicates, got {names}")
    return names


@dataclass(frozen=True)
class GlyphParams:
    """The look of one instance; positions and sizes are fractions of the image side."""

    name: str  #: class name
    font: str  #: key of :data:`FONTS` (glyphs)
    italic: bool  #: slanted (glyphs)
    stroke: int  #: 1 thin, 2 regular, 3 bold (scaled with the image size)
    filled: bool  #: solid instead of outlined (shapes)
    size: float  #: largest extent of the glyph / shape
    angle_deg: float  #: rotation, positive = counter-clockwise
    cx: float  #: centre x
    cy: float  #: centre y
    foreground: float  #: intensity of the glyph in [0, 1]
    background: float  #: intensity of the background in [0, 1]


_SIZE_RANGE = (0.25, 0.75)
_EXTENT_GROWTH = 1.15  #: bound on how much rotation and slant grow the half extent


def sample_params(name: str, rng: np.random.Generator, fonts: tuple[str, ...] = tuple(FONTS),
                  margin: float = 0.05) -> GlyphParams:
    """Draw the look of one instance of class ``name``; ``margin``: border kept free (fraction of the side).

    The size is drawn first, then a centre that keeps the instance inside the
    margin (the image centre when it does not fit anywhere else).
    """
    size = float(rng.uniform(*_SIZE_RANGE))
    reach = 0.5 * size * _EXTENT_GROWTH + margin
    cx, cy = (float(v) for v in (rng.uniform(reach, 1.0 - reach, 2) if reach < 0.5 else (0.5, 0.5)))
    return GlyphParams(
        name=name,
        font=str(fonts[rng.integers(len(fonts))]),
        italic=bool(rng.random() < 0.3),
        stroke=int(rng.integers(1, 4)),
        filled=bool(rng.random() < 0.5),
        size=size,
        angle_deg=float(rng.uniform(-25.0, 25.0)),
        cx=cx,
        cy=cy,
        foreground=float(rng.uniform(0.7, 1.0)),
        background=float(rng.uniform(0.0, 0.25)),
    )


def _stroke_px(params: GlyphParams, side: int) -> int:
    return max(1, int(round(params.stroke * side / 48.0)))


def _affine(angle_deg: float, shear: float, src_centre: tuple[float, float], dst_centre: tuple[float, float]):
    """2x3 matrix: slant about, then rotate about ``src_centre``, and move it to ``dst_centre``."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # counter-clockwise on screen (y down)
    lin = rot @ np.array([[1.0, -shear], [0.0, 1.0]])
    offset = np.asarray(dst_centre) - lin @ np.asarray(src_centre)
    return np.hstack([lin, offset[:, None]])


def _glyph_mask(params: GlyphParams, side: int) -> np.ndarray:
    font = FONTS[params.font][0]
    thickness = _stroke_px(params, side)
    target = params.size * side
    canvas = np.zeros((2 * side, 2 * side), dtype=np.uint8)

    def draw(scale: float) -> tuple[int, int, int, int]:
        canvas[:] = 0
        (w, h), _ = cv2.getTextSize(params.name, font, scale, thickness)
        cv2.putText(canvas, params.name, (side - w // 2, side + h // 2), font, scale, 255, thickness, cv2.LINE_AA)
        x, y, width, height = cv2.boundingRect(canvas)
        return x, y, width, height

    # Hershey glyph extents differ per character: draw once at the font's nominal height, then
    # again at the scale that gives the wanted ink extent (strokes keep their width)
    (w1, h1), base1 = cv2.getTextSize(params.name, font, 1.0, thickness)
    scale = target / max(w1, h1 + base1)
    _, _, bw, bh = draw(scale)
    x, y, bw, bh = draw(scale * target / max(bw, bh, 1))
    shear = _ITALIC_SHEAR if params.italic else 0.0
    src_centre = (x + (bw - 1) / 2.0, y + (bh - 1) / 2.0)
    m = _affine(params.angle_deg, shear, src_centre, (params.cx * side - 0.5, params.cy * side - 0.5))
    out = cv2.warpAffine(canvas, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out.astype(np.float32) * np.float32(1.0 / 255.0)


def _shape_mask(params: GlyphParams, side: int) -> np.ndarray:
    mask = np.zeros((side, side), dtype=np.float32)
    radius = 0.5 * params.size * side
    centre = np.array([params.cx * side - 0.5, params.cy * side - 0.5])
    fixed = 1 << _SUBPIXEL_BITS
    thickness = _stroke_px(params, side)
    if params.name == "circle":
        c = tuple(int(v) for v in np.round(centre * fixed))
        cv2.circle(mask, c, int(round(radius * fixed)), 1.0, -1 if params.filled else thickness,
                   cv2.LINE_AA, _SUBPIXEL_BITS)
        return mask
    a = np.deg2rad(params.angle_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    points = centre + radius * _SHAPE_POINTS[params.name] @ rot.T
    poly = [np.round(points * fixed).astype(np.int32)]
    if params.filled:
        cv2.fillPoly(mask, poly, 1.0, cv2.LINE_AA, _SUBPIXEL_BITS)
    else:
        cv2.polylines(mask, poly, True, 1.0, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
    return mask


def render(params: GlyphParams, side: int) -> np.ndarray:
    """The instance as a (side, side) float32 intensity image in [0, 1]."""
    mask = _shape_mask(params, side) if params.name in SHAPES else _glyph_mask(params, side)
    bg, fg = np.float32(params.background), np.float32(params.foreground)
    return bg + (fg - bg) * mask


def _position_words(cx: float, cy: float) -> str:
    col = 0 if cx < 0.43 else (2 if cx > 0.57 else 1)
    row = 0 if cy < 0.43 else (2 if cy > 0.57 else 1)
    return (("at the top left", "at the top", "at the top right"),
            ("on the left", "in the center", "on the right"),
            ("at the bottom left", "at the bottom", "at the bottom right"))[row][col]


def caption(params: GlyphParams) -> str:
    """A sentence naming the class and describing size, stroke, slant, tilt, position and font."""
    size = "small" if params.size < 0.42 else ("medium-sized" if params.size < 0.58 else "large")
    stroke = {1: "thin", 2: "", 3: "bold"}[params.stroke]
    if params.name in SHAPES:
        style = "filled" if params.filled else " ".join(w for w in (stroke, "outlined") if w)
        noun, font = f"{params.name} shape", ""
    else:
        style = " ".join(w for w in (stroke, "italic" if params.italic else "") if w)
        noun = f"{'digit' if params.name in DIGITS else 'letter'} {params.name}"
        font = f", in a {FONTS[params.font][1]} font"
    if abs(params.angle_deg) < _TILT_UPRIGHT_DEG or params.name == "circle":
        tilt = "upright"
    else:
        tilt = "tilted left" if params.angle_deg > 0 else "tilted right"
    words = " ".join(w for w in (size, style, noun) if w)
    return f"a {words}, {tilt}, {_position_words(params.cx, params.cy)}{font}"
