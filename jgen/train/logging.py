"""Metrics to WORKDIR/metrics.jsonl and TensorBoard (WORKDIR/tb), from process 0 only; WORKDIR may be a URL."""

import json
import os

import jax

from jgen import files


class MetricsWriter:
    def __init__(self, workdir: str):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        import tensorflow as tf

        self._jsonl = files.open_append(os.path.join(workdir, "metrics.jsonl"))
        self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        import tensorflow as tf

        scalars = {k: float(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()
        with self._tb.as_default(step=step):
            for k, v in scalars.items():
                tf.summary.scalar(k, v)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
