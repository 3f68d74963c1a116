"""Dashboard themes: YAML files of a palette plus semantic roles, loaded as Textual themes.

The dashboard never names a colour. It styles things by what they mean
(`$status-failed`, `$node-cordoned`, `$component-kubelet`), and each theme file
in the top-level `themes/` folder says which colour each meaning gets, as k9s
skins do. A file is validated strictly (pydantic, unknown keys rejected, every
colour parsed by Textual), so a typo is reported as `file: field.path: rule`
instead of showing up as a wrong colour, and becomes a `textual.theme.Theme`
whose `variables` carry every role. Roles a file leaves out, and every role
under Textual's built-in themes, fall back to `ROLE_DEFAULTS`, mid-tone colours
readable on dark and light backgrounds.

Naming: the file `themes/<stem>.yaml` is the Textual theme `kbox-<stem>`
(`dark.yaml` is `kbox-dark`); `load_theme` takes either form or a path.
User themes in `$KBOX_THEMES_DIR` (one folder, or several joined by
`os.pathsep`) are added to the shipped ones and win on equal names.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from textual.color import Color, ColorParseError
from textual.design import ColorSystem
from textual.theme import Theme

if TYPE_CHECKING:
    from textual.app import App

log = logging.getLogger(__name__)

THEME_PREFIX = "kbox-"
USER_THEMES_ENV = "KBOX_THEMES_DIR"

# Every role, with a default readable (contrast >= 3.5) on both Textual's
# built-in dark (#121212) and light (#e0e0e0) backgrounds.
ROLE_DEFAULTS: dict[str, str] = {
    "status-running": "#278138",
    "status-pending": "#976903",
    "status-succeeded": "#2a71c7",
    "status-failed": "#dc2323",
    "status-terminating": "#9650cc",
    "status-unknown": "#6a727a",
    "node-ready": "#278138",
    "node-notready": "#dc2323",
    "node-cordoned": "#ad5b0a",
    "event-normal": "#6a727a",
    "event-warning": "#976903",
    "component-scheduler": "#2c73be",
    "component-kubelet": "#227e72",
    "component-deployment": "#7f5bd1",
    "component-replicaset": "#a946bb",
    "component-job": "#9f6410",
    "component-daemonset": "#327f5d",
    "component-node": "#4e7788",
    "component-endpoint": "#337894",
    "component-gc": "#7e7049",
    "component-namespace": "#b9497a",
    "component-serviceaccount": "#677831",
    "component-other": "#6a727a",
}
ROLE_NAMES: tuple[str, ...] = tuple(ROLE_DEFAULTS)

# Textual Theme colour fields a palette may set, and that a role may name.
PALETTE_NAMES: tuple[str, ...] = (
    "primary", "secondary", "accent", "background", "surface", "panel",
    "foreground", "warning", "error", "success", "boost",
)

COLOUR_HINT = "use #rrggbb, rgb(...) or a colour name"


class ThemeError(ValueError):
    """A theme file that cannot be used; the message names the file, the field and the rule."""

    def __init__(self, file: str, message: str, field: str = "", line: int | None = None):
        self.file, self.field, self.line, self.rule = file, field, line, message
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(where + message + (f" (line {line})" if line else ""))


# ---------------------------------------------------------------- file schema

def _present(value: Any) -> Any:
    if value is None:
        raise ValueError("has no value (a colour starting with # must be quoted in YAML: \"#rrggbb\")")
    return value


def _colour(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{value!r} is not a colour ({COLOUR_HINT})") from None
    return value


def _colour_or_palette(value: str) -> str:
    if value in PALETTE_NAMES:
        return value
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{value!r} is not a colour ({COLOUR_HINT}) "
                         f"nor a palette name ({', '.join(PALETTE_NAMES)})") from None
    return value


# `_present` wraps the whole optional type: an explicit null (an unquoted #colour) is an
# error, while a key left out keeps its default None (defaults are not validated)
PaletteColour = Annotated[str, BeforeValidator(_present), AfterValidator(_colour)]
OptionalPaletteColour = Annotated[
    Annotated[str, AfterValidator(_colour)] | None, BeforeValidator(_present)]
OptionalRoleColour = Annotated[
    Annotated[str, AfterValidator(_colour_or_palette)] | None, BeforeValidator(_present)]

_STRICT = ConfigDict(extra="forbid", strict=True)


class Palette(BaseModel):
    model_config = _STRICT
    primary: PaletteColour
    secondary: OptionalPaletteColour = None
    accent: OptionalPaletteColour = None
    background: OptionalPaletteColour = None
    surface: OptionalPaletteColour = None
    panel: OptionalPaletteColour = None
    foreground: OptionalPaletteColour = None
    warning: OptionalPaletteColour = None
    error: OptionalPaletteColour = None
    success: OptionalPaletteColour = None
    boost: OptionalPaletteColour = None


# one optional field per role, spelled as in the file (`status-running`)
Roles = create_model(  # type: ignore[call-overload]
    "Roles",
    __config__=ConfigDict(extra="forbid", strict=True, populate_by_name=False),
    **{role.replace("-", "_"): (OptionalRoleColour, Field(default=None, alias=role))
       for role in ROLE_NAMES},
)


class ThemeFile(BaseModel):
    model_config = _STRICT
    name: str | None = None
    description: str | None = None
    dark: bool
    palette: Palette
    roles: Roles = Field(default_factory=Roles)  # type: ignore[valid-type]


# ---------------------------------------------------------------- errors

_ALLOWED = {
    (): tuple(ThemeFile.model_fields),
    ("palette",): PALETTE_NAMES,
    ("roles",): ROLE_NAMES,
}


def _describe(err: dict[str, Any]) -> str:
    kind, value, loc = err["type"], err.get("input"), tuple(err["loc"])
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = _ALLOWED.get(loc[:-1], ())
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        return f"unknown key ({hint})"
    got = f"got {type(value).__name__} {value!r}"
    if kind == "bool_type":
        return f"must be true or false, {got}"
    if kind == "string_type":
        return f"must be a string, {got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of keys to values, {got}"
    return f"{err['msg']}, {got}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc` (the deepest one found), for error messages."""
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == key:
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return line


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_theme_file(path: Path) -> ThemeFile:
    """Read and validate one theme file; raise ThemeError naming the first problem."""
    shown = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThemeError(shown, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is not None:
            raise ThemeError(shown, f"line {mark.line + 1}, column {mark.column + 1}: "
                                    f"invalid YAML: {problem}") from None
        raise ThemeError(shown, f"invalid YAML: {problem}") from None
    if data is None:
        raise ThemeError(shown, "the file is empty (expected name, dark, palette and roles)")
    if not isinstance(data, dict):
        raise ThemeError(shown, "expected a mapping at the top level (name, dark, palette, roles), "
                                f"got {type(data).__name__}")
    try:
        parsed = ThemeFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise ThemeError(shown, _describe(err), field=".".join(str(p) for p in loc),
                         line=_line_of(tree, loc)) from None
    expected = theme_name(path.stem)
    if parsed.name is not None and parsed.name != expected:
        raise ThemeError(shown, f"{parsed.name!r} must be {expected!r} "
                                f"(a theme's name is {THEME_PREFIX!r} + its file name)",
                         field="name", line=_line_of(tree, ("name",)))
    return parsed


# ---------------------------------------------------------------- finding and loading

def theme_name(stem: str) -> str:
    """The Textual theme name for the file `<stem>.yaml`."""
    return stem if stem.startswith(THEME_PREFIX) else THEME_PREFIX + stem


def themes_dir() -> Path:
    """The shipped `themes/` folder at the top of the project (source checkout or editable install)."""
    return Path(__file__).resolve().parents[2] / "themes"


def _theme_dirs() -> list[Path]:
    user = [Path(p).expanduser() for p in os.environ.get(USER_THEMES_ENV, "").split(os.pathsep) if p]
    return [themes_dir(), *user]


def _theme_files() -> dict[str, Path]:
    """Theme name -> file; later folders ($KBOX_THEMES_DIR) override earlier ones."""
    files: dict[str, Path] = {}
    for folder in _theme_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                files[theme_name(path.stem)] = path
    return files


def available_themes() -> list[str]:
    """Names (`kbox-dark`, ...) of every theme file found, sorted; usable as `App.theme`."""
    return sorted(_theme_files())


def _resolve(name_or_path: str) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        return Path(name_or_path).expanduser()
    files = _theme_files()
    path = files.get(theme_name(name_or_path))
    if path is None:
        raise ThemeError(name_or_path, "no such theme (available: "
                                       f"{', '.join(sorted(files)) or 'none'})")
    return path


def _to_css(value: str) -> str:
    colour = Color.parse(value)
    return value if colour.ansi is not None else colour.hex.lower()


def load_theme(name_or_path: str) -> Theme:
    """A Textual Theme from a theme name (`dark` or `kbox-dark`) or a .yaml path.

    Its `variables` hold every role in ROLE_NAMES as a CSS colour: roles naming a
    palette entry are resolved (through Textual's colour system when the palette
    leaves that entry to be derived), missing roles take ROLE_DEFAULTS.
    """
    path = _resolve(name_or_path)
    spec = parse_theme_file(path)
    palette = spec.palette.model_dump(exclude_none=True)
    theme = Theme(name=theme_name(path.stem), dark=spec.dark,
                  **{key: _to_css(value) for key, value in palette.items()})
    derived = ColorSystem(**{key: value for key, value in palette.items()}, dark=spec.dark).generate()
    roles = spec.roles.model_dump(by_alias=True)
    variables = {}
    for role in ROLE_NAMES:
        value = roles.get(role)
        if value is None:
            variables[role] = ROLE_DEFAULTS[role]
        elif value in PALETTE_NAMES:
            variables[role] = _to_css(palette[value]) if value in palette else derived[value]
        else:
            variables[role] = _to_css(value)
    theme.variables = variables
    return theme


def register_themes(app: App[Any], on_error: Callable[[ThemeError], None] | None = None) -> list[str]:
    """Register every theme file on `app`; return the names registered.

    A malformed file is skipped: its ThemeError goes to `on_error` (default: a
    warning in the log) and the other themes still register.
    """
    names = []
    for name, path in sorted(_theme_files().items()):
        try:
            theme = load_theme(str(path))
        except ThemeError as exc:
            (on_error or (lambda e: log.warning("theme skipped: %s", e)))(exc)
            continue
        app.register_theme(theme)
        names.append(name)
    return names


# ---------------------------------------------------------------- what a word means

_STATUS_ROLES: dict[str, str] = {}
for _role, _words in {
    "status-running": "Running Active Available Bound Healthy",
    "status-pending": "Pending ContainerCreating PodInitializing Waiting Progressing Scaling "
                      "SchedulingGated Unschedulable Suspended Started Created",
    "status-succeeded": "Succeeded Completed Complete",
    "status-failed": "Failed Error CrashLoopBackOff ImagePullBackOff ErrImagePull ErrImageNeverPull "
                     "InvalidImageName OOMKilled CreateContainerConfigError CreateContainerError "
                     "RunContainerError ContainerCannotRun StartError DeadlineExceeded "
                     "BackoffLimitExceeded Evicted ReplicaFailure FailedCreatePodSandBox "
                     "FailedScheduling Unhealthy",
    "status-terminating": "Terminating Deleting Killing Stopping",
    "status-unknown": "Unknown ContainerStatusUnknown NodeLost",
    "node-ready": "Ready",
    "node-notready": "NotReady",
    "node-cordoned": "SchedulingDisabled Cordoned",
    "event-normal": "Normal",
    "event-warning": "Warning",
}.items():
    for _word in _words.split():
        _STATUS_ROLES[_word.lower()] = _role


def status_role(text: str) -> str:
    """The role for a status as the tables show it.

    Pod phases and reasons (`Running`, `CrashLoopBackOff`, `Init:0/2`,
    `Init:Error`, `Signal:9`, `Terminating`), node states (`Ready`, `NotReady`,
    `Ready,SchedulingDisabled`), workload conditions (`Available`,
    `Progressing`, `Complete`), event types (`Normal`, `Warning`) and ready
    counts (`3/3` running, `1/3` pending, `4/3` terminating). Anything else
    ending in BackOff or containing Err is a failure; the rest is unknown.
    """
    text = text.strip()
    if "," in text:  # node: worst state wins
        roles = {status_role(part) for part in text.split(",")}
        for role in ("node-notready", "status-unknown", "node-cordoned", "node-ready"):
            if role in roles:
                return role
    if text.startswith("Init:"):
        rest = text[len("Init:"):]
        return "status-pending" if _fraction(rest) else status_role(rest)
    if text.startswith(("Signal:", "ExitCode:")):
        return "status-failed"
    counts = _fraction(text)
    if counts:
        ready, wanted = counts
        return ("status-running" if ready == wanted else
                "status-pending" if ready < wanted else "status-terminating")
    role = _STATUS_ROLES.get(text.lower())
    if role:
        return role
    if text.endswith("BackOff") or "Err" in text:
        return "status-failed"
    return "status-unknown"


def _fraction(text: str) -> tuple[int, int] | None:
    left, slash, right = text.partition("/")
    if slash and left.isdigit() and right.isdigit():
        return int(left), int(right)
    return None


_COMPONENT_ROLES = {
    "deployment": "component-deployment",
    "replicaset": "component-replicaset",
    "job": "component-job",
    "cronjob": "component-job",
    "daemonset": "component-daemonset",
    "node": "component-node",
    "nodelifecycle": "component-node",
    "node-lifecycle": "component-node",
    "endpoint": "component-endpoint",
    "endpoints": "component-endpoint",
    "endpointslice": "component-endpoint",
    "garbage-collector": "component-gc",
    "generic-garbage-collector": "component-gc",
    "gc": "component-gc",
    "namespace": "component-namespace",
    "serviceaccount": "component-serviceaccount",
    "token": "component-serviceaccount",
    "serviceaccount-token": "component-serviceaccount",
}


def component_role(source_component: str) -> str:
    """The role for an event's source component (`default-scheduler`, `kubelet`, `job-controller`, ...)."""
    comp = source_component.strip().lower()
    if comp.startswith("kubelet"):
        return "component-kubelet"
    if comp.endswith("scheduler"):
        return "component-scheduler"
    return _COMPONENT_ROLES.get(comp.removesuffix("-controller"), "component-other")


def role_style(variables: dict[str, str], role: str) -> str:
    """A Rich style string (`#rrggbb`) for `role` from an app's `theme_variables`.

    Falls back to ROLE_DEFAULTS when the variables lack the role or hold no
    colour; a translucent colour is blended onto the theme's background, as
    Rich has no alpha. An unknown role gives "" (no style).
    """
    for value in (variables.get(role), ROLE_DEFAULTS.get(role)):
        if not value:
            continue
        try:
            colour = Color.parse(value)
        except ColorParseError:
            continue
        if colour.ansi is not None:
            return value.removeprefix("ansi_")
        if colour.a < 1:
            try:
                background = Color.parse(variables.get("background", "#000000"))
            except ColorParseError:
                background = Color(0, 0, 0)
            colour = background.blend(colour.with_alpha(1), colour.a)
        return colour.hex6.lower()
    return ""
