"""Textual's Footer, without its leak.

Every recompose (each screen switch, each change in which keys apply) makes new FooterKey
widgets bound to the Footer's `compact` reactive with `data_bind`; Textual 8.2.8 removes a
watcher from that list only when `compact` changes, which it never does here. The old keys stay
reachable from the live Footer, and every full garbage collection walks more of them: after a few
hundred switches a collection took 300 ms, stalling the Web Connector endpoint that shares the
event loop. After each recompose we drop the watchers whose widget has left the screen.
"""

from __future__ import annotations

from textual.widgets import Footer


class ConnexFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        self.prune_watchers()

    def prune_watchers(self) -> int:
        """Forget watchers of widgets no longer mounted; returns how many were dropped."""
        watchers: dict[str, list] = getattr(self, "__watchers", {})
        dropped = 0
        for _name, entries in watchers.items():
            alive = [(node, callback) for node, callback in entries if node is self or node.is_attached]
            dropped += len(entries) - len(alive)
            entries[:] = alive
        return dropped
