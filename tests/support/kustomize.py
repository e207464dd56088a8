"""A Python render of the kustomize features deploy/k8s uses, for machines without kustomize.

`tests/unit/deploy` renders with `kubectl kustomize` (or `kustomize build`) when one is
installed and checks there that this render gives the same objects, so the two cannot drift;
elsewhere it renders with this. Supported: `resources` (files, and folders holding a
kustomization), `replicas`, `images` (newName, newTag, digest) and `patches` as strategic-merge
patches of maps (`path` or inline `patch`, `$patch: delete`). Any other field, or a patch that
would merge a list, raises instead of rendering something kustomize would not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

_KNOWN_FIELDS = frozenset({"apiVersion", "kind", "resources", "replicas", "images", "patches"})


class Unsupported(Exception):
    """The kustomization uses a feature this render does not implement."""


def render(directory: Path) -> list[Manifest]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _KNOWN_FIELDS
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    docs: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for patch in kustomization.get("patches", []):
        text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
        if set(patch) - {"path", "patch"}:
            raise Unsupported(f"{directory}: patch fields {sorted(patch)}")
        docs = _apply_patch(docs, yaml.safe_load(text))
    for replica in kustomization.get("replicas", []):
        (target,) = [
            d
            for d in docs
            if d["metadata"]["name"] == replica["name"] and "replicas" in d.get("spec", {})
        ]
        target["spec"]["replicas"] = replica["count"]
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    return docs


def _identity(doc: Manifest) -> tuple[str, str, str, str]:
    metadata = doc["metadata"]
    return doc["apiVersion"], doc["kind"], metadata["name"], metadata.get("namespace", "")


def _apply_patch(docs: list[Manifest], patch: Manifest) -> list[Manifest]:
    patch = copy.deepcopy(patch)
    delete = patch.pop("$patch", None) == "delete"
    matches = [doc for doc in docs if _identity(doc) == _identity(patch)]
    if len(matches) != 1:
        raise Unsupported(f"patch target {_identity(patch)} matches {len(matches)} objects")
    (target,) = matches
    if delete:
        return [doc for doc in docs if doc is not target]
    _merge(target, patch)
    return docs


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif isinstance(value, list) or isinstance(target.get(key), list):
            raise Unsupported(f"merging the list {key!r} needs its merge key")
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _set_image(doc: Manifest, image: dict[str, str]) -> None:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        name, tag = _split_image(container["image"])
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        else:
            tag = image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


def _split_image(reference: str) -> tuple[str, str]:
    name, _, digest = reference.partition("@")
    if digest:
        return name, ""
    head, _, tag = name.rpartition(":")
    if head and "/" not in tag:
        return head, tag
    return name, ""
