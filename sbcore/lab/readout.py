"""What a sum of separately seen items can reach on far pairs: the 75% bound, and a read-out that attains it.

Beyond its reach a plain network's pooled features are g(a) + g(b) + c. Take any two trousers T, T' and bags B, B':
the same pairs (T, T'), (B, B') and the mixed pairs (T, B'), (B, T') have equal sums, so a linear threshold gets
at most three of those four right. Over the four pair types (trouser+trouser, bag+bag, trouser+bag, bag+trouser)
that bounds such a network at 75%, not at 50%: it can, for instance, say "same" exactly when both items are
trousers (right on trouser+trouser and both mixed types, wrong on bag+bag).

Cross-entropy does not lead there. With the number of bags k in {0, 1, 2} (probabilities 1/4, 1/2, 1/4), "same"
holds at k = 0 and k = 2 and not at k = 1: a U shape, and the logistic fit of a U by a line through the symmetric
k is flat, P(same) = 1/2 everywhere, 50%. ``far_pair_readout`` shows both on the pooled features of far canvases:
a logistic read-out fitted to same/different (what training minimises) and a linear read-out fitted to find
trouser+trouser pairs, answering "same" exactly there (the 75% strategy), beside the model's own trained head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sbcore.data import FASHION_MNIST_CLASSES
from sbcore.evaluate import wilson_interval
from sbcore.lab.same_different import SameDifferentCanvases

SUM_OF_ITEMS_BOUND = 75.0  # percent: at most 3 of the 4 pair types, see the module docstring


@dataclass(frozen=True)
class ReadoutAccuracy:
    """Accuracy (percent) on far test pairs, overall with its Wilson 95% interval and per pair type."""

    name: str  # "trained head", "logistic read-out of same/different", ...
    accuracy: float
    ci95: tuple[float, float]
    samples: int
    per_pair_type: dict[str, float]  # "Trouser+Bag" -> percent


def far_indices(canvases: SameDifferentCanvases, count: int, min_distance: int) -> list[int]:
    """The first ``count`` sample indices whose distance bin starts at ``min_distance`` px or further."""
    task = canvases.task
    return canvases.indices_in_bins({b for b in range(task.num_bins) if task.bin_edges[b] >= min_distance})[:count]


@torch.no_grad()
def pooled_features(model: nn.Module, canvases: SameDifferentCanvases, indices: list[int],
                    batch_size: int = 200) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(pooled last-stage features (n, F), labels (n,), pair type of each sample) for the given samples."""
    model.eval()
    features, labels, kinds = [], [], []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        images = torch.stack([canvases[i][0] for i in chunk]).to(next(model.parameters()).device)
        features.append(torch.flatten(model.avgpool(model.forward_features(images)), 1).cpu())
        for i in chunk:
            placement = canvases.placement(i)
            labels.append(placement.label)
            kinds.append("+".join(FASHION_MNIST_CLASSES[c] for c in placement.classes))
    return torch.cat(features), torch.tensor(labels), kinds


def _accuracy(name: str, predicted: torch.Tensor, labels: torch.Tensor, kinds: list[str]) -> ReadoutAccuracy:
    hits = predicted == labels
    per_type = {kind: round(100 * float(hits[[k == kind for k in kinds]].float().mean()), 1)
                for kind in sorted(set(kinds))}
    correct = int(hits.sum())
    return ReadoutAccuracy(name, round(100 * correct / len(hits), 2), wilson_interval(correct, len(hits)),
                           len(hits), per_type)


def fit_linear_readout(features: torch.Tensor, labels: torch.Tensor, weight_decay: float = 1e-3,
                       steps: int = 200) -> nn.Linear:
    """Logistic regression (L-BFGS, L2 penalty) on standardised features; returns a layer that takes raw features."""
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    layer = nn.Linear(features.shape[1], 2)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    scaled = (features - mean) / std

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(layer(scaled), labels) + weight_decay * layer.weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():  # fold the standardisation into the layer
        layer.weight /= std
        layer.bias -= layer.weight @ mean
    return layer


FIRST_CLASS_PAIR = "+".join([FASHION_MNIST_CLASSES[1]] * 2)  # "Trouser+Trouser"


def far_pair_readout(model: nn.Module, train: SameDifferentCanvases, test: SameDifferentCanvases,
                     min_distance: int, train_count: int = 1000, test_count: int = 600) -> list[ReadoutAccuracy]:
    """Three read-outs of ``model``'s pooled features on far test pairs (distance bins from ``min_distance`` px):
    its trained head; a logistic read-out fitted to same/different on far training pairs; and a linear read-out
    fitted on them to find trouser+trouser pairs, answering "same" exactly there."""
    train_x, train_y, train_kinds = pooled_features(model, train, far_indices(train, train_count, min_distance))
    test_x, test_y, kinds = pooled_features(model, test, far_indices(test, test_count, min_distance))
    trousers = torch.tensor([kind == FIRST_CLASS_PAIR for kind in train_kinds], dtype=torch.long)
    with torch.enable_grad():
        same_different, trouser_pairs = fit_linear_readout(train_x, train_y), fit_linear_readout(train_x, trousers)
    with torch.no_grad():
        return [
            _accuracy("trained head", model.fc(test_x.to(model.fc.weight.device)).argmax(1).cpu(), test_y, kinds),
            _accuracy("logistic read-out of same/different", same_different(test_x).argmax(1), test_y, kinds),
            _accuracy("linear read-out: same iff trouser+trouser", trouser_pairs(test_x).argmax(1), test_y, kinds),
        ]
