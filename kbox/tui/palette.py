"""The command palette (ctrl+p): the registry's commands, the views and the themes.

Picking a registry command puts it in the prompt for its arguments (the
palette cannot ask for them); views and themes switch at once.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from kbox.tui.views import VIEWS


class KboxCommands(Provider):
    def _entries(self) -> list[tuple[str, str, object]]:
        from kbox.cli.registry import COMMANDS, load_commands
        app = self.app
        load_commands()
        out: list[tuple[str, str, object]] = []
        for name in sorted(COMMANDS):
            out.append((f"kbox {name}", COMMANDS[name].help, partial(app.fill_prompt, f"{name} ")))  # type: ignore[attr-defined]
        for name, spec in VIEWS.items():
            out.append((f":{name}", f"Show {spec.resource}", partial(app.run_line, f":{name}")))  # type: ignore[attr-defined]
        out.append((":tree", "Deployments → ReplicaSets → Pods", partial(app.run_line, ":tree")))  # type: ignore[attr-defined]
        for theme in app.kbox_themes():  # type: ignore[attr-defined]
            out.append((f":theme {theme}", "Switch the dashboard theme", partial(app.run_line, f":theme {theme}")))  # type: ignore[attr-defined]
        return out

    async def discover(self) -> Hits:
        for text, help, action in self._entries():
            yield DiscoveryHit(text, action, help=help)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help, action in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), action, help=help)  # type: ignore[arg-type]
