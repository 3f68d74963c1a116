"""Theme files: every shipped theme loads with every role, themes switch at runtime
in a Textual app, malformed files give a clear error, high contrast is high contrast,
and pod/node/event words map to the right roles."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.color import Color
from textual.widgets import Static

from kbox.tui import theme as th
from kbox.tui.theme import (
    ROLE_DEFAULTS, ROLE_NAMES, ThemeError, available_themes, component_role, load_theme,
    register_themes, role_style, status_role, themes_dir,
)

SHIPPED = ["kbox-dark", "kbox-high-contrast", "kbox-light"]


@pytest.fixture(autouse=True)
def _no_user_themes(monkeypatch):
    monkeypatch.delenv(th.USER_THEMES_ENV, raising=False)


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = Color.parse(colour).rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# ---------------------------------------------------------------- shipped themes

def test_shipped_themes_are_found_in_the_project():
    assert themes_dir() == Path(__file__).resolve().parents[1] / "themes"
    for stem in ("dark", "light", "high-contrast"):
        assert (themes_dir() / f"{stem}.yaml").is_file()
    assert available_themes() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_theme_loads_with_every_role(name):
    theme = load_theme(name)
    assert theme.name == name
    assert set(theme.variables) == set(ROLE_NAMES)
    for role in ROLE_NAMES:
        Color.parse(theme.variables[role])
    # the shipped files spell out every role rather than leaning on defaults
    spec = th.parse_theme_file(themes_dir() / f"{name.removeprefix('kbox-')}.yaml")
    assert spec.roles.model_dump(by_alias=True, exclude_none=True).keys() == set(ROLE_NAMES)


def test_names_stems_and_paths_load_the_same_theme():
    by_stem, by_name = load_theme("dark"), load_theme("kbox-dark")
    by_path = load_theme(str(themes_dir() / "dark.yaml"))
    assert by_stem == by_name == by_path
    assert by_stem.dark and not load_theme("light").dark


def test_palette_references_are_resolved_to_colours():
    theme = load_theme("dark")
    assert theme.variables["status-running"] == theme.success
    assert theme.variables["status-failed"] == theme.error


def test_high_contrast_is_wcag_aaa():
    theme = load_theme("high-contrast")
    assert contrast(theme.foreground, theme.background) >= 7
    low = {role: round(contrast(theme.variables[role], theme.background), 2)
           for role in ROLE_NAMES if contrast(theme.variables[role], theme.background) < 7}
    assert not low, f"roles below 7:1 on {theme.background}: {low}"


@pytest.mark.parametrize("name", ["kbox-dark", "kbox-light"])
def test_dark_and_light_roles_are_readable(name):
    theme = load_theme(name)
    assert contrast(theme.foreground, theme.background) >= 7
    for role in ROLE_NAMES:
        assert contrast(theme.variables[role], theme.background) >= 4.5, role


def test_role_defaults_cover_every_role_and_read_on_builtin_backgrounds():
    assert tuple(ROLE_DEFAULTS) == ROLE_NAMES and len(ROLE_NAMES) == 23
    for role, colour in ROLE_DEFAULTS.items():
        assert contrast(colour, "#121212") >= 3.5, role  # textual-dark
        assert contrast(colour, "#e0e0e0") >= 3.5, role  # textual-light
        assert contrast(colour, "#ffffff") >= 4.5, role


# ---------------------------------------------------------------- in a Textual app

class RolesApp(App[None]):
    CSS = "#running { color: $status-running; } #failed { color: $component-kubelet; }"

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **ROLE_DEFAULTS}

    def compose(self) -> ComposeResult:
        yield Static("running", id="running")
        yield Static("kubelet", id="failed")


def test_app_registers_and_switches_themes_at_runtime():
    async def run() -> None:
        app = RolesApp()
        async with app.run_test() as pilot:
            assert register_themes(app) == SHIPPED
            for name in ["kbox-light", "kbox-high-contrast", "kbox-dark"]:
                app.theme = name
                await pilot.pause()
                expected = load_theme(name).variables
                assert {r: app.theme_variables[r] for r in ROLE_NAMES} == expected
                running = app.query_one("#running", Static).styles.color
                assert running.hex.lower() == expected["status-running"]
                kubelet = app.query_one("#failed", Static).styles.color
                assert kubelet.hex.lower() == expected["component-kubelet"]
                assert role_style(app.theme_variables, "status-failed") == expected["status-failed"]
            # a built-in Textual theme still has every role, from ROLE_DEFAULTS
            app.theme = "textual-dark"
            await pilot.pause()
            assert {r: app.theme_variables[r] for r in ROLE_NAMES} == ROLE_DEFAULTS

    asyncio.run(run())


def test_a_malformed_user_theme_does_not_stop_the_others(tmp_path, monkeypatch):
    (tmp_path / "broken.yaml").write_text("dark: true\npalette: {primary: nope}\n")
    (tmp_path / "mine.yaml").write_text("dark: false\npalette: {primary: '#123456'}\n"
                                        "roles: {status-running: 'rgb(0, 128, 0)'}\n")
    (tmp_path / "light.yaml").write_text("dark: false\npalette: {primary: '#654321'}\n")
    monkeypatch.setenv(th.USER_THEMES_ENV, str(tmp_path))
    assert available_themes() == ["kbox-broken", *SHIPPED, "kbox-mine"]

    class Bare(App[None]):
        pass

    app, errors = Bare(), []
    names = register_themes(app, on_error=errors.append)
    assert names == [*SHIPPED, "kbox-mine"]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'broken.yaml'}: palette.primary: 'nope' is not a colour "
        "(use #rrggbb, rgb(...) or a colour name) (line 2)"]
    mine = app.get_theme("kbox-mine")
    assert mine.variables["status-running"] == "#008000"
    assert mine.variables["status-failed"] == ROLE_DEFAULTS["status-failed"]  # default fills in
    assert app.get_theme("kbox-light").primary == "#654321"  # a user file overrides a shipped one


def test_an_unknown_theme_name_lists_the_available_ones():
    with pytest.raises(ThemeError, match=r"nope: no such theme \(available: kbox-dark, "):
        load_theme("nope")


# ---------------------------------------------------------------- malformed files

def _error(tmp_path: Path, text: str, name: str = "broken.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ThemeError) as info:
        load_theme(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: "):]


GOOD_HEAD = textwrap.dedent("""\
    name: kbox-broken
    dark: true
    palette:
      primary: "#336699"
""")


def test_yaml_syntax_error_names_the_line(tmp_path):
    assert _error(tmp_path, GOOD_HEAD + "roles:\n  status-running: [oops\n").startswith(
        "line 7, column 1: invalid YAML:")


def test_bad_colour_in_roles(tmp_path):
    message = _error(tmp_path, GOOD_HEAD + "roles:\n  status-running: not-a-colour\n")
    assert message == ("roles.status-running: 'not-a-colour' is not a colour (use #rrggbb, rgb(...) "
                       "or a colour name) nor a palette name (primary, secondary, accent, background, "
                       "surface, panel, foreground, warning, error, success, boost) (line 6)")


def test_bad_colour_in_palette(tmp_path):
    assert _error(tmp_path, GOOD_HEAD + "  error: '#12345'\n") == (
        "palette.error: '#12345' is not a colour (use #rrggbb, rgb(...) or a colour name) (line 5)")


def test_unquoted_hash_colour_is_explained(tmp_path):
    message = _error(tmp_path, GOOD_HEAD + "roles:\n  node-ready: #00ff00\n")
    assert message == ('roles.node-ready: has no value (a colour starting with # must be quoted in YAML: '
                       '"#rrggbb") (line 6)')


@pytest.mark.parametrize("text, expected", [
    (GOOD_HEAD + "colours: {}\n", "colours: unknown key (allowed: name, description, dark, palette, roles) (line 5)"),
    (GOOD_HEAD + "  primery: red\n", "palette.primery: unknown key (did you mean 'primary'?) (line 5)"),
    (GOOD_HEAD + "roles:\n  status-runing: red\n",
     "roles.status-runing: unknown key (did you mean 'status-running'?) (line 6)"),
])
def test_unknown_keys_are_rejected(tmp_path, text, expected):
    assert _error(tmp_path, text) == expected


@pytest.mark.parametrize("text, expected", [
    (GOOD_HEAD.replace("dark: true", "dark: 'yes please'"),
     "dark: must be true or false, got str 'yes please' (line 2)"),
    (GOOD_HEAD.replace("dark: true", "dark: 1"), "dark: must be true or false, got int 1 (line 2)"),
    (GOOD_HEAD + "roles:\n  status-failed: 255\n", "roles.status-failed: must be a string, got int 255 (line 6)"),
    (GOOD_HEAD + "roles: [status-failed]\n",
     "roles: must be a mapping of keys to values, got list ['status-failed'] (line 5)"),
    (GOOD_HEAD.replace("name: kbox-broken", "name: 7"), "name: must be a string, got int 7 (line 1)"),
    ("name: kbox-broken\npalette: {primary: red}\n", "dark: is required"),
    ("dark: true\npalette: {}\n", "palette.primary: is required (line 2)"),
])
def test_wrong_types_and_missing_keys(tmp_path, text, expected):
    assert _error(tmp_path, text) == expected


def test_whole_file_problems(tmp_path):
    assert _error(tmp_path, "") == "the file is empty (expected name, dark, palette and roles)"
    assert _error(tmp_path, "- a\n- b\n") == (
        "expected a mapping at the top level (name, dark, palette, roles), got list")
    assert _error(tmp_path, GOOD_HEAD.replace("kbox-broken", "kbox-other")) == (
        "name: 'kbox-other' must be 'kbox-broken' (a theme's name is 'kbox-' + its file name) (line 1)")
    with pytest.raises(ThemeError, match="cannot read"):
        load_theme(str(tmp_path / "missing.yaml"))


def test_relative_paths_are_shown_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "themes").mkdir()
    (tmp_path / "themes" / "broken.yaml").write_text(
        GOOD_HEAD + "roles:\n  status-running: not-a-colour\n")
    with pytest.raises(ThemeError, match=r"^themes/broken\.yaml: roles\.status-running: 'not-a-colour' "):
        load_theme("themes/broken.yaml")


def test_roles_may_name_palette_entries_the_file_leaves_to_textual(tmp_path):
    path = tmp_path / "minimal.yaml"
    path.write_text("dark: true\npalette: {primary: '#336699'}\nroles: {status-pending: warning}\n")
    theme = load_theme(str(path))
    Color.parse(theme.variables["status-pending"])  # Textual's derived warning colour
    assert theme.variables["status-running"] == ROLE_DEFAULTS["status-running"]


# ---------------------------------------------------------------- words to roles

@pytest.mark.parametrize("text, role", [
    ("Running", "status-running"), ("Pending", "status-pending"),
    ("ContainerCreating", "status-pending"), ("PodInitializing", "status-pending"),
    ("Init:0/2", "status-pending"), ("Init:Error", "status-failed"),
    ("Init:CrashLoopBackOff", "status-failed"),
    ("Succeeded", "status-succeeded"), ("Completed", "status-succeeded"),
    ("Failed", "status-failed"), ("Error", "status-failed"), ("CrashLoopBackOff", "status-failed"),
    ("ImagePullBackOff", "status-failed"), ("ErrImagePull", "status-failed"),
    ("OOMKilled", "status-failed"), ("CreateContainerConfigError", "status-failed"),
    ("CreateContainerError", "status-failed"), ("Evicted", "status-failed"),
    ("Signal:9", "status-failed"), ("ExitCode:137", "status-failed"),
    ("SomeNewBackOff", "status-failed"), ("ErrSomethingNew", "status-failed"),
    ("Terminating", "status-terminating"), ("Unknown", "status-unknown"),
    ("NodeLost", "status-unknown"), ("", "status-unknown"), ("Weird", "status-unknown"),
    ("Ready", "node-ready"), ("NotReady", "node-notready"),
    ("SchedulingDisabled", "node-cordoned"), ("Ready,SchedulingDisabled", "node-cordoned"),
    ("NotReady,SchedulingDisabled", "node-notready"),
    ("Available", "status-running"), ("Progressing", "status-pending"),
    ("Complete", "status-succeeded"), ("ReplicaFailure", "status-failed"),
    ("3/3", "status-running"), ("1/3", "status-pending"), ("4/3", "status-terminating"),
    ("Normal", "event-normal"), ("Warning", "event-warning"), ("running", "status-running"),
])
def test_status_role(text, role):
    assert status_role(text) == role
    assert role in ROLE_NAMES


@pytest.mark.parametrize("component, role", [
    ("default-scheduler", "component-scheduler"), ("kubelet", "component-kubelet"),
    ("kubelet node-1", "component-kubelet"),
    ("deployment-controller", "component-deployment"),
    ("replicaset-controller", "component-replicaset"), ("job-controller", "component-job"),
    ("daemonset-controller", "component-daemonset"), ("node-controller", "component-node"),
    ("endpoint-controller", "component-endpoint"),
    ("garbage-collector-controller", "component-gc"),
    ("namespace-controller", "component-namespace"),
    ("serviceaccount-controller", "component-serviceaccount"),
    ("token-controller", "component-serviceaccount"),
    ("statefulset-controller", "component-other"), ("kbox", "component-other"), ("", "component-other"),
])
def test_component_role(component, role):
    assert component_role(component) == role
    assert role in ROLE_NAMES


def test_role_style():
    variables = {"background": "#000000", "status-failed": "#ff000080", "node-ready": "ansi_green",
                 "status-running": "$oops"}
    assert role_style(variables, "status-failed") == "#800000"  # half alpha onto black
    assert role_style(variables, "node-ready") == "green"
    assert role_style(variables, "status-running") == ROLE_DEFAULTS["status-running"]
    assert role_style({}, "component-job") == ROLE_DEFAULTS["component-job"]
    assert role_style({}, "no-such-role") == ""
