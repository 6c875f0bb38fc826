"""tf-keras' kernels: TensorFlow's, as lossgrad.lowp_tf reproduces them, with tf-keras' own mean over a sample's
outputs (tf.reduce_mean in the loss's dtype, where Keras 3 averages half dtypes in float32)."""

from __future__ import annotations

from functools import partial

from . import lowp_tf_log

SUPPORTED = lowp_tf_log.SUPPORTED
unsupported = lowp_tf_log.unsupported
unsupported_in = lowp_tf_log.unsupported_in
compute = partial(lowp_tf_log.compute, keras2=True)
