"""Switch a block's global context off and measure what it causes: ablation and activation patching.

A *component* is one place where a model adds global context: a block's spatial-bias maps (named by the block,
``"layer1.0"``; the upsampled (B, N, H', W') maps that are concatenated to its 3x3 conv output) or a non-local block
(``"layer2.0.non_local"``; its residual term BN(W_z y), (B, C, H, W)). An intervention replaces chosen components'
contributions during a forward pass:

- ``mean`` (the default): by their mean over a reference set (``reference_means``; the CLI and the app use 512
  training images or training canvases), the usual mean ablation: the block keeps the values its next layers
  expect, it only loses what depends on the input;
- ``zero``: by zeros (a non-local block becomes the identity; zero spatial-bias maps are far from what ``bn2``
  was trained on, so this measures more than the loss of context);
- ``resample``: by the contributions of another input of the batch (a fixed derangement; ``patch`` from the
  shuffled batch);
- ``patch``: by the contributions computed on a second, given input (activation patching; Vig et al. 2020,
  Meng et al. 2022).

Weights are never changed: the replacement lives in a context variable that the blocks consult
(``sbcore.models.contribution_edits``), so other threads using the same model get intact results, and nothing
remains after the ``with`` block, by an error or not. The inference path and ``reference_formulation()`` both
honour it, since the block replaces the maps after either computed them.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from sbcore.analysis.structure import eval_mode, named_blocks
from sbcore.errors import SBCoreError
from sbcore.models.contribution_edits import ContributionEdit, ContributionKind, EditKey, editing_contributions

INTERVENTION_MODES = {
    "mean": "replaced by their mean over a reference set",
    "zero": "replaced by zeros (a non-local block becomes the identity)",
    "resample": "replaced by those of another input of the batch",
    "patch": "replaced by those computed on a second input",
}
NON_LOCAL_SUFFIX = ".non_local"
REFERENCE_SIZE = 512  # reference images for mean ablation in the CLI and the app


class InterventionError(SBCoreError, ValueError):
    """An intervention names a component the model lacks, or a mode it cannot run."""


@dataclass(frozen=True)
class Component:
    """One place where a model adds global context."""

    name: str  # "layer1.0" (spatial-bias maps) or "layer2.0.non_local"
    kind: ContributionKind
    block: str  # "layer1.0"
    stage: int  # 1 for layer1

    @property
    def label(self) -> str:
        """``"SB layer1.0"`` or ``"NL layer2.0"``."""
        return f"{'SB' if self.kind == 'spatial_bias' else 'NL'} {self.block}"


def components(model: nn.Module) -> list[Component]:
    """Every spatial-bias branch and non-local block of ``model``, in forward order."""
    found = []
    for block_name, block in named_blocks(model):
        stage = int(block_name.split(".")[0].removeprefix("layer"))
        if getattr(block, "spatial_bias", None) is not None:
            found.append(Component(block_name, "spatial_bias", block_name, stage))
        if getattr(block, "non_local", None) is not None:
            found.append(Component(block_name + NON_LOCAL_SUFFIX, "non_local", block_name, stage))
    return found


def _model_name(model: nn.Module) -> str:
    meta = getattr(model, "metadata", None)
    return (meta.pretrained or meta.architecture) if meta is not None else type(model).__name__


def _require_components(model: nn.Module) -> list[Component]:
    found = components(model)
    if not found:
        raise InterventionError(
            f"{_model_name(model)} has no spatial-bias or non-local blocks: there is no global context to switch off."
        )
    return found


def resolve_components(model: nn.Module, names: Sequence[str]) -> list[Component]:
    """The components named (``"layer1.0"`` for a block's spatial-bias maps, ``"layer2.0.non_local"`` for its
    non-local block), checked: an unknown name or one of the wrong kind raises ``InterventionError`` naming
    the model's components."""
    available = {c.name: c for c in _require_components(model)}
    listing = ", ".join(available)
    resolved = []
    for name in names:
        if name in available:
            resolved.append(available[name])
            continue
        block = name.removesuffix(NON_LOCAL_SUFFIX)
        if name.endswith(NON_LOCAL_SUFFIX) and block in available:
            problem = f"block {block} has spatial bias but no non-local block"
        elif block + NON_LOCAL_SUFFIX in available:
            problem = f"block {block} has no spatial-bias branch; its non-local block is {block}{NON_LOCAL_SUFFIX}"
        elif block in dict(named_blocks(model)):
            problem = f"block {block} has neither spatial bias nor a non-local block"
        else:
            problem = f"there is no block {block!r}"
        raise InterventionError(f"{_model_name(model)}: {problem}. Its global-context components are {listing}.")
    if not resolved:
        raise InterventionError(f"Name at least one component to switch off; {_model_name(model)} has {listing}.")
    return resolved


def stage_components(model: nn.Module, stages: Sequence[int]) -> list[Component]:
    """Every component (spatial bias and non-local) in the given stages (1 for layer1)."""
    found = _require_components(model)
    with_context = sorted({c.stage for c in found})
    missing = [s for s in stages if s not in with_context]
    if missing:
        raise InterventionError(
            f"{_model_name(model)} has no global context in stage {', '.join(map(str, missing))}; "
            f"stages with some: {', '.join(map(str, with_context))}."
        )
    return [c for c in found if c.stage in stages]


def ablation_settings(model: nn.Module) -> list[tuple[str, list[Component]]]:
    """``--each-block``: each component alone, then each stage (where it holds several), then each kind
    (for a model with both), then all of them; as (label, components)."""
    found = _require_components(model)
    settings = [(c.label, [c]) for c in found]
    for stage in sorted({c.stage for c in found}):
        in_stage = [c for c in found if c.stage == stage]
        if len(in_stage) > 1:
            settings.append((f"stage {stage}", in_stage))
    kinds = {c.kind for c in found}
    if len(kinds) > 1:
        settings += [(f"all {tag}", [c for c in found if c.kind == kind])
                     for kind, tag in (("spatial_bias", "SB"), ("non_local", "NL"))]
    if len(found) > 1:
        settings.append(("all", found))
    return settings


def _edit_keys(model: nn.Module, targets: Sequence[Component]) -> list[EditKey]:
    """The (block module, kind) each target's edit is keyed by, in order."""
    blocks = dict(named_blocks(model))
    return [(blocks[c.block], c.kind) for c in targets]


@torch.no_grad()
def record_contributions(model: nn.Module, x: torch.Tensor, targets: Sequence[Component]) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` (B, C, H, W) and return each target's contribution as the block computed it
    (spatial bias: (B, N, H', W'); non-local: (B, C_out, H', W'), the block's output width), keyed by component name."""
    recorded: dict[str, torch.Tensor] = {}

    def recorder(name: str) -> ContributionEdit:
        def keep(computed: torch.Tensor) -> torch.Tensor:
            recorded[name] = computed.detach().clone()
            return computed
        return keep

    with editing_contributions({key: recorder(c.name) for key, c in zip(_edit_keys(model, targets), targets)}):
        model(x)
    return recorded


@torch.no_grad()
def reference_means(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean contribution (C, H', W') of every component over the images of ``batches`` ((B, C, H, W) each), in
    fp64 while summing: what ``mean`` ablation puts in their place."""
    targets = _require_components(model)
    sums: dict[str, torch.Tensor] = {}
    count = 0
    with eval_mode(model):  # batch statistics would change the means and the BN running averages
        for x in batches:
            for name, value in record_contributions(model, x, targets).items():
                sums[name] = sums.get(name, 0) + value.double().sum(dim=0)
            count += len(x)
    if count == 0:
        raise InterventionError("Mean ablation needs at least one reference image.")
    return {name: (total / count).float() for name, total in sums.items()}


def _replacement(component: Component, mode: str, means: Mapping[str, torch.Tensor] | None,
                 source: Mapping[str, torch.Tensor] | None) -> ContributionEdit:
    if mode == "zero":
        return torch.zeros_like
    if mode == "mean":
        if means is None or component.name not in means:
            raise InterventionError(f"Mean ablation of {component.name} needs its reference mean (reference_means).")
        mean = means[component.name]

        def use_mean(computed: torch.Tensor) -> torch.Tensor:
            if tuple(mean.shape) != tuple(computed.shape[1:]):
                raise InterventionError(
                    f"The reference mean of {component.name} has shape {tuple(mean.shape)}, the input gives "
                    f"{tuple(computed.shape[1:])}: compute the means at this input size."
                )
            return mean.to(computed).expand_as(computed)
        return use_mean
    patched = source[component.name]  # type: ignore[index]

    def use_source(computed: torch.Tensor) -> torch.Tensor:
        return patched.to(computed).expand_as(computed)
    return use_source


@contextmanager
def intervened(
    model: nn.Module, targets: Sequence[str | Component], mode: str = "mean", *,
    means: Mapping[str, torch.Tensor] | None = None, source: torch.Tensor | None = None,
) -> Iterator[list[Component]]:
    """Inside the block, ``model``'s forward passes in this thread (``model(x)``, ``forward_intermediates``, gradient
    attributions that call ``model`` itself) run with the targets' contributions replaced; yields the resolved
    components. Edits belong to these block objects: a copy of the model (Grad-CAM attributes on one) is intact.

    ``mode``: ``mean`` (needs ``means`` from ``reference_means``), ``zero`` or ``patch`` (needs ``source``, the
    (B, C, H, W) or (1, C, H, W) input to take the contributions from). ``resample`` needs the batch itself: use
    ``intervened_logits``.
    """
    resolved = resolve_components(model, [t.name if isinstance(t, Component) else t for t in targets])
    if mode not in INTERVENTION_MODES or mode == "resample":
        usable = ", ".join(m for m in INTERVENTION_MODES if m != "resample")
        raise InterventionError(f"Unknown intervention mode {mode!r} here; choose one of {usable} (resample: intervened_logits).")
    recorded = None
    if mode == "patch":
        if source is None:
            raise InterventionError("Patching needs a source input to take the contributions from.")
        recorded = record_contributions(model, source, resolved)
    edits = {key: _replacement(c, mode, means, recorded) for key, c in zip(_edit_keys(model, resolved), resolved)}
    with editing_contributions(edits):
        yield resolved


def derangement(size: int, seed: int = 0) -> torch.Tensor:
    """A permutation of ``range(size)`` that moves every index (size >= 2): which input lends its contributions."""
    if size < 2:
        raise InterventionError("Resampling takes each input's contributions from another input: use a batch of 2 or more.")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    permutation = torch.empty_like(order)
    permutation[order] = order.roll(1)
    return permutation


def intervened_logits(
    model: nn.Module, x: torch.Tensor, targets: Sequence[str | Component], mode: str = "mean", *,
    means: Mapping[str, torch.Tensor] | None = None, source: torch.Tensor | None = None, seed: int = 0,
) -> torch.Tensor:
    """(B, C, H, W) -> (B, classes) logits with the targets' contributions replaced (see ``intervened``);
    ``resample`` patches each input from ``x[derangement(B, seed)]``."""
    if mode == "resample":
        mode, source = "patch", x[derangement(len(x), seed).to(x.device)]
    with intervened(model, targets, mode, means=means, source=source):
        return model(x)
