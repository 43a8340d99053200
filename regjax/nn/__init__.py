"""Flax NNX layers that regularize: the middle layer of regjax (core ← nn ← experiment).

- :mod:`regjax.nn.stochastic`: DropConnect, drop path (stochastic depth), cutout, mixup
  and CutMix, as pure functions of a PRNG key and as NNX layers.
- :mod:`regjax.nn.pooling`: fractional max-pooling.
- :mod:`regjax.nn.gates`: L0 hard-concrete gates and straight-through masks.
- :mod:`regjax.nn.pruning`: magnitude pruning, ``keep_pruned`` fine-tuning, compaction.
- :mod:`regjax.nn.models`: the MLP and ConvNet that the examples and compaction use;
  they live here rather than in the harness because pruning compacts them.
"""

from regjax.nn import gates, models, pooling, pruning, stochastic

__all__ = ["gates", "models", "pooling", "pruning", "stochastic"]
