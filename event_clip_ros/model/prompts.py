"""Prompt templates and label lists for the text side of zero-shot classification.

A *template* is a sentence with exactly one ``{}`` where the label goes
("an event camera image of a {}."); a *prompt* is a complete sentence: a
template filled with a label, or a description written as is (the anomaly
scorer's "a person falling."). A class's text weight averages the embeddings
of all its prompts (a prompt ensemble, as in CLIP), see
:mod:`event_clip_ros.model.zero_shot`. Templates are loaded with
:func:`load_templates` (or :func:`resolve_templates`, by set name or file),
complete prompts with :func:`load_prompts`.

Template sets (:data:`PROMPT_SETS`)
    ``"n-imagenet"``, ``"n-caltech101"``, ``"n-mnist"`` are the single prompts
    the paper's code uses for those datasets (verbatim, without a final
    period). ``"event"`` (the default, :data:`DEFAULT_TEMPLATES`) is a short
    ensemble of plain descriptions of what an event frame looks like; it is not
    tuned on any data set.

Cleaning rules (templates and labels alike)
    Surrounding whitespace is stripped, empty entries are dropped, and
    duplicates are dropped keeping the first occurrence (case-sensitive: "Cat"
    and "cat" are two labels), so the order given is the order used. An empty
    result is an error. In files, blank lines and lines whose first non-blank
    character is ``#`` are skipped; a ``.yaml``/``.yml`` file holds a YAML list
    of strings instead.

Labels may contain any character, commas included when they come from a file
(:func:`load_labels`); :func:`parse_labels` splits on commas. Labels are put
into templates by plain substitution (no ``str.format``), so braces in a label
are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

PLACEHOLDER = "{}"

#: The ensemble used when none is given: what an event-camera frame looks like.
EVENT_TEMPLATES: tuple[str, ...] = (
    "an event camera image of a {}.",
    "a point cloud image of a {}.",
    "a sketch of a {}.",
    "a black and white outline of a {}.",
    "a photo of a {}.",
)

#: Named template sets: the paper's per-dataset prompts and the event ensemble.
PROMPT_SETS: dict[str, tuple[str, ...]] = {
    "event": EVENT_TEMPLATES,
    "n-imagenet": ("a photo of a {}",),
    "n-caltech101": ("a point cloud image of a {}",),
    "n-mnist": ("The digit {}",),
}

DEFAULT_TEMPLATES: tuple[str, ...] = EVENT_TEMPLATES

#: Default descriptions for :class:`~event_clip_ros.model.anomaly.TextAnomalyScorer`.
#: Generic on purpose; describe the expected and the unwanted scene of your task instead.
NORMAL_PROMPTS: tuple[str, ...] = (
    "an event camera image of a normal scene.",
    "an ordinary scene.",
    "nothing unusual is happening.",
)
ABNORMAL_PROMPTS: tuple[str, ...] = (
    "an event camera image of an abnormal scene.",
    "an unusual event.",
    "something unusual is happening.",
)


def _clean(items: Iterable[str], what: str) -> tuple[str, ...]:
    """Strip, drop empties and duplicates (first occurrence wins); error when nothing is left."""
    out: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{what} must be strings, got {type(item).__name__}: {item!r}")
        item = item.strip()
        if item:
            out.setdefault(item)
    if not out:
        raise ValueError(f"no {what} given (after dropping blank entries)")
    return tuple(out)


def _read_list(path: str | Path, what: str) -> list[str]:
    """Entries of a text file (one per line, '#' comments) or of a YAML list file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a YAML list of {what}, got {type(data).__name__}")
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in data]  # "- 7" is a label
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def validate_templates(templates: Iterable[str]) -> tuple[str, ...]:
    """Cleaned templates; ValueError unless each holds exactly one ``{}``."""
    if isinstance(templates, str):
        raise ValueError(f"templates must be a sequence of strings, not one string: {templates!r}")
    cleaned = _clean(templates, "templates")
    bad = [t for t in cleaned if t.count(PLACEHOLDER) != 1]
    if bad:
        raise ValueError(f"each template needs exactly one '{PLACEHOLDER}' where the label goes; these do not: {bad}")
    return cleaned


def validate_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Cleaned labels (see the module's cleaning rules)."""
    if isinstance(labels, str):
        raise ValueError(f"labels must be a sequence of strings, not one string: {labels!r} (see parse_labels)")
    return _clean(labels, "labels")


def validate_prompts(prompts: Iterable[str]) -> tuple[str, ...]:
    """Cleaned complete prompts; ValueError for one holding ``{}`` (a template given where sentences are expected)."""
    if isinstance(prompts, str):
        raise ValueError(f"prompts must be a sequence of strings, not one string: {prompts!r}")
    cleaned = _clean(prompts, "prompts")
    bad = [p for p in cleaned if PLACEHOLDER in p]
    if bad:
        raise ValueError(f"complete prompts are expected, without '{PLACEHOLDER}'; these look like templates: {bad}")
    return cleaned


def parse_labels(text: str) -> tuple[str, ...]:
    """Labels from a comma-separated string: ``"cat, dog,car"`` -> ("cat", "dog", "car")."""
    return validate_labels(text.split(","))


def _load(path: str | Path, what: str, validate) -> tuple[str, ...]:
    entries = _read_list(path, what)
    try:
        return validate(entries)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_labels(path: str | Path) -> tuple[str, ...]:
    """Labels from a file: one per line (commas kept), or a YAML list."""
    return _load(path, "labels", validate_labels)


def load_templates(path: str | Path) -> tuple[str, ...]:
    """Templates from a file: one per line with ``{}``, or a YAML list."""
    return _load(path, "templates", validate_templates)


def load_prompts(path: str | Path) -> tuple[str, ...]:
    """Complete prompts from a file (e.g. descriptions of normal scenes): one per line, or a YAML list."""
    return _load(path, "prompts", validate_prompts)


def resolve_templates(spec: str | Path) -> tuple[str, ...]:
    """A template set by name (a key of :data:`PROMPT_SETS`) or from a file (for CLI and node parameters)."""
    key = str(spec)
    if key in PROMPT_SETS:
        return PROMPT_SETS[key]
    if Path(key).is_file():
        return load_templates(key)
    raise ValueError(f"{key!r} is neither a prompt set ({', '.join(PROMPT_SETS)}) nor an existing file")


def fill_templates(templates: Sequence[str], label: str) -> list[str]:
    """The prompts of one label, in template order."""
    return [t.replace(PLACEHOLDER, label) for t in templates]
