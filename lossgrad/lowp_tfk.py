"""tf-keras' kernels: TensorFlow's, as lossgrad.lowp_tf reproduces them, with tf-keras' own mean over a sample's
outputs (tf.reduce_mean in the loss's dtype, where Keras 3 averages half dtypes in float32)."""

from __future__ import annotations

from functools import partial
from typing import Any

from . import lowp_tf_log

SUPPORTED = lowp_tf_log.SUPPORTED
# Keras 3's losses whose tf-keras counterparts call other kernels, and what those are
OTHER = {"ctc": "ctc (tf-keras' ctc_batch_cost calls TensorFlow's C++ CTCLoss op, whose recursion is not reproduced)"}


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why TensorFlow's kernels are not reproduced for this loss and these options under tf-keras (None: they
    are)."""
    if loss in OTHER:
        return OTHER[loss]
    return lowp_tf_log.unsupported(loss, from_logits, params, switches, sample_weight)


unsupported_in = lowp_tf_log.unsupported_in
compute = partial(lowp_tf_log.compute, keras2=True)
