"""Plugins by name, and the config sections they declare: the one mechanism behind every config key that names
an implementation (`model.name` -> an architecture, `train.trainer` -> a trainer class, `distill.loss` -> a
distillation loss).

A `Registry` maps names to entries. A plugin registers itself where it is defined
(`@TRAINERS.register("distill")`); the registry's owner lists its built-in plugins by module path only
(`{"distill": "kpt_tf.distill.trainer"}`), and that module is imported the first time its name is looked up (or
when every name is asked for), so the module that owns a seam never imports its plugins, and loading one plugin
never loads the others.

A `ConfigSection` is what a plugin declares of the config section it reads: every key with its default, and the
check of a filled section. `make` gives a new section (what configs/ call), `fill` completes a section in place
(an older config.json lacking a key added since) and checks it. Library code then reads keys without restating a
default.

Neither class imports TensorFlow.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from typing import Any, Callable, Mapping

_NOT_GIVEN = object()


class Registry:
    """Name -> entry for one kind of plugin; `where` names what holds the name in messages ("config train.trainer")."""

    def __init__(self, kind: str, where: str, builtins: Mapping[str, str] | None = None):
        self.kind = kind
        self.where = where
        self._builtins = dict(builtins or {})   # name -> module that registers it when imported
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry=_NOT_GIVEN):
        """`registry.register(name, entry)` returns `entry`; `@registry.register(name)` decorates a class or function.
        A name registered twice with different entries is refused."""
        if entry is _NOT_GIVEN:
            return lambda e: self.register(name, e)
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name):
        """The entry registered as `name` (importing its built-in module on first use); ValueError naming `where` and
        listing every known name otherwise."""
        name = str(name)
        if name not in self._entries and name in self._builtins:
            importlib.import_module(self._builtins[name])
            if name not in self._entries:
                raise ValueError(f"{self._builtins[name]} was imported for {self.kind} {name!r} but registers no such "
                                 "name")
        if name not in self._entries:
            raise ValueError(f"{self.where} {name!r}: unknown {self.kind}; known: {', '.join(self.names())}")
        return self._entries[name]

    __getitem__ = get

    def names(self) -> list[str]:
        """Every known name, registered or built-in (nothing is imported)."""
        return sorted(self._entries.keys() | self._builtins.keys())

    def __contains__(self, name) -> bool:
        return name in self._entries or name in self._builtins

    def __iter__(self):
        return iter(self.names())

    def load_all(self) -> dict:
        """Every entry, importing each built-in module (e.g. so that Keras knows every layer a saved file may name)."""
        return {name: self.get(name) for name in self.names()}


def _no_check(section) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class ConfigSection:
    """The keys of one config section (`path`, e.g. "model") as a plugin reads them: defaults and the check.

    `check(section)` gets a filled section and raises ValueError naming `config <path>.<key>` for a bad value.
    """

    path: str
    owner: str                              # who declares it, for messages ("architecture pbn")
    defaults: Mapping[str, Any]
    check: Callable[[Any], None] = _no_check

    def make(self, **values):
        """A new section: the defaults, with `values` replacing some (a key not declared is refused); locked like the
        rest of a config, so a typo in an override is refused where it is written."""
        import ml_collections

        self._refuse_unknown(values)
        section = ml_collections.ConfigDict({k: copy.deepcopy(values.get(k, v)) for k, v in self.defaults.items()})
        section.lock()
        return section

    def fill(self, section):
        """`section` (a ConfigDict) completed in place with the default of every key it lacks, then checked; a key not
        declared is refused. Returns `section`."""
        self._refuse_unknown(section)
        missing = [k for k in self.defaults if k not in section]
        if missing:
            with section.unlocked():
                for k in missing:
                    section[k] = copy.deepcopy(self.defaults[k])
        self.check(section)
        return section

    def filled(self, section):
        """A filled and checked copy of `section` (which is left as it is)."""
        return self.fill(copy.deepcopy(section))

    def _refuse_unknown(self, keys) -> None:
        unknown = [k for k in keys if k not in self.defaults]
        if unknown:
            raise ValueError(f"config {self.path}.{unknown[0]}: not a key of {self.owner} (its keys: "
                             f"{', '.join(self.defaults)})")
