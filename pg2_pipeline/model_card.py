"""What the registry says about a generator: its version, aliases, tags and what it was trained on.

    card = describe_model("models:/pg2-generator@champion")
    print(card.headline())   # pg2-generator v3 (@champion): trained on the synthetic twin of Market-1501, ...
    card.caveat()            # "... a real photo comes out as a twin-like person ..." for a twin-trained model
    registered_versions("pg2-generator")   # every version, newest first (the page's switcher)

The evaluation's registration tags each version (:func:`pg2_pipeline.registry.publish.publish_evaluation`):
``data`` (``twin`` or ``real``), ``dataset``, ``profile``, ``stage1.steps`` / ``stage2.steps``, the selected
steps and the gate's metric. Versions registered before a tag existed say "not recorded" for it: nothing is
guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# models:/<name>@<alias> or models:/<name>/<version>: the only model URIs a client of the page may
# name (a folder or runs:/ URI would let a request choose what is read from the filesystem).
REGISTERED_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9_.\-]{1,100})(?:@(?P<alias>[A-Za-z0-9_\-]{1,100})|/(?P<version>[0-9]{1,9}))$"
)
DATASET_NAMES = {"market": "Market-1501", "deepfashion": "DeepFashion In-shop"}
# Tags shown on the page, in this order (the rest stay in ``tags``).
SHOWN_TAGS = ("data", "dataset", "profile", "stage1.steps", "stage2.steps", "stage1.selected", "stage2.selected",
              "stage2.variant", "mask_ssim", "copy_mask_ssim")  # fmt: skip


@dataclass(frozen=True)
class ModelCard:
    uri: str  # as asked for (an alias stays an alias)
    name: str | None  # registered model; None for runs:/ URIs and folders
    version: str | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def version_uri(self) -> str | None:
        return f"models:/{self.name}/{self.version}" if self.name and self.version else None

    def trained_on(self) -> str:
        """One line: the data, profile and training steps recorded with the version."""
        tags = self.tags
        dataset = DATASET_NAMES.get(tags.get("dataset", ""), tags.get("dataset"))
        data = tags.get("data")
        if data == "twin":
            what = f"the synthetic twin of {dataset}" if dataset else "the synthetic twin"
        elif data == "real":
            what = f"real {dataset} photos" if dataset else "a real dataset"
        else:
            what = f"{dataset} (real photos or the synthetic twin: not recorded)" if dataset else "data not recorded"
        details = [f"{tags['profile']} profile"] if "profile" in tags else []
        steps = [
            f"{s} {tags[f'{k}.steps']} steps" for k, s in (("stage1", "G1"), ("stage2", "G2")) if f"{k}.steps" in tags
        ]
        details += steps
        selected = [
            f"{s} {tags[f'{k}.selected']}" for k, s in (("stage1", "G1"), ("stage2", "G2")) if f"{k}.selected" in tags
        ]
        details += [f"kept: {', '.join(selected)}"] if selected else []
        return f"trained on {what}" + (f" ({'; '.join(details)})" if details else "")

    def caveat(self) -> str | None:
        """What a user must know before giving the model a real photo, or None."""
        if self.tags.get("data") == "twin":
            return (
                "trained on synthetic people only: a real photo comes out as a twin-like person "
                "(synthetic skin, clothes and background), not as the person in it"
            )
        if self.tags.get("data") is None:
            return "what this model was trained on is not recorded in the registry (registered before the data tag)"
        return None

    def headline(self) -> str:
        if self.name is None:
            return f"{self.uri}: {self.trained_on()}"
        aliases = f" (@{', @'.join(self.aliases)})" if self.aliases else ""
        return f"{self.name} v{self.version}{aliases}: {self.trained_on()}"

    def to_dict(self) -> dict[str, Any]:
        shown = {k: self.tags[k] for k in SHOWN_TAGS if k in self.tags}
        return {
            "uri": self.uri,
            "name": self.name,
            "version": int(self.version) if self.version and self.version.isdigit() else self.version,
            "version_uri": self.version_uri,
            "aliases": list(self.aliases),
            "tags": shown,
            "trained_on": self.trained_on(),
            "caveat": self.caveat(),
        }


def _card(uri: str, version, aliases=None) -> ModelCard:
    """A card from an MLflow ``ModelVersion`` (``aliases``: when the version does not carry them)."""
    aliases = version.aliases if aliases is None else aliases
    return ModelCard(uri, version.name, str(version.version), tuple(sorted(aliases or ())), dict(version.tags or {}))


def describe_model(uri: str, metadata: dict[str, Any] | None = None) -> ModelCard:
    """The card of a ``models:/`` URI from the active tracking store's registry; other URIs
    (``runs:/…``, a folder) get the facts of the model's own ``metadata`` only. Raises
    ``MlflowException`` for an unknown name, alias or version."""
    from mlflow import MlflowClient

    match = REGISTERED_URI.match(uri)
    if match is None:
        tags = {k: str(v) for k, v in (metadata or {}).items() if k in SHOWN_TAGS}
        return ModelCard(uri, None, None, (), tags)
    client = MlflowClient()
    name, alias, number = match["name"], match["alias"], match["version"]
    version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    return _card(uri, version)


def registered_versions(name: str) -> list[ModelCard]:
    """Every version of registered model ``name``, newest first ([] when it does not exist)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    # a search leaves the versions' aliases empty: they live on the registered model
    aliases: dict[str, list[str]] = {}
    for alias, number in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    cards = [_card(f"models:/{v.name}/{v.version}", v, aliases.get(str(v.version), [])) for v in versions]
    return sorted(cards, key=lambda c: -int(c.version))


def project_model_uri(root) -> str:
    """The generator a project's evaluation registered: ``@champion`` when it holds the alias,
    else its version (a failed gate leaves the alias where it was); ``models:/<name>@champion``
    before any evaluation."""
    from pg2_pipeline import summaries
    from pg2_pipeline.config import load_params
    from pg2_pipeline.paths import ProjectPaths

    paths = ProjectPaths(root)
    if paths.evaluation.registration.is_file():
        registration = summaries.read(paths.evaluation.registration, summaries.Registration)
        return f"models:/{registration.name}@champion" if registration.champion else registration.model_uri
    return f"models:/{load_params(paths.params_file).mlflow.registered_model}@champion"
