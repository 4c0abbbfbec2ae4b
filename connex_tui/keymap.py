"""`[interface] keymap`: a person's own keys for the interface's bindings.

Every binding of the interface has an id (`pending.retry`, `screen.sku_log`, `table.top`, ...).
The configuration maps ids to key strings (`engine.config` checks the table's shape and the key
syntax); here each entry is checked against the bindings that exist and the key names Textual
knows, so a typo is a `ConfigError` naming the entry before anything starts. The App applies the
result with Textual's keymap support (`App.set_keymap`): footer, `?` and the command palette then
show the effective keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from textual.binding import Binding
from textual.dom import DOMNode
from textual.keys import Keys, _character_to_key, key_to_character

from .engine.config import DEFAULT_FILE_NAME, KEY_MODIFIERS, Config, ConfigError


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def known_bindings() -> dict[str, Binding]:
    """Every binding of the interface by id: the App's, each screen's, each dialog's and widget's
    (any class of this package with BINDINGS)."""
    from . import app  # noqa: F401 - imports every screen, dialog and widget class

    found: dict[str, Binding] = {}
    for cls in _subclasses(DOMNode):
        if not cls.__module__.startswith(f"{__package__}."):
            continue
        for binding in cls.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                found.setdefault(binding.id, binding)
    return found


def _key_names() -> set[str]:
    names = {key.value.rsplit("+", 1)[-1] for key in Keys}
    names |= {_character_to_key(chr(code)) for code in range(33, 127)}
    return names


def _unknown_name(key: str, names: set[str]) -> str | None:
    """The key's name if Textual does not know it, else None (modifiers are checked by the config)."""
    name = key.rsplit("+", 1)[-1]
    if len(name) == 1 or name in names or key_to_character(name) is not None:
        return None
    return name


def check_keymap(entries: Iterable[tuple[str, str]], *, label: str = DEFAULT_FILE_NAME) -> dict[str, str]:
    """The keymap to apply, or a `ConfigError` naming the first entry whose binding id does not
    exist or whose key Textual does not know."""
    bindings = known_bindings()
    names = _key_names()
    keymap: dict[str, str] = {}
    for binding_id, keys in entries:
        where = f"{label}: [interface] keymap.{binding_id}"
        if binding_id not in bindings:
            close = difflib.get_close_matches(binding_id, list(bindings), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "the ? screen and the README list the ids"
            raise ConfigError(f"{where}: unknown binding id ({hint})")
        for key in keys.split(","):
            unknown = _unknown_name(key, names)
            if unknown is not None:
                close = difflib.get_close_matches(unknown, sorted(names), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "a letter, a digit, or a name like f5, enter, pageup"
                raise ConfigError(f"{where}: malformed key {key!r}: Textual knows no key {unknown!r} ({hint})")
        keymap[binding_id] = keys
    return keymap


def keymap_of(config: Config) -> dict[str, str]:
    """The configuration's checked keymap (see `check_keymap`)."""
    label = str(config.source) if config.source is not None else DEFAULT_FILE_NAME
    return check_keymap(config.interface.keymap, label=label)


__all__ = ["KEY_MODIFIERS", "check_keymap", "keymap_of", "known_bindings"]
