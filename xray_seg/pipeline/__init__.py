"""The tf.data input pipeline: checked decoding, paired augmentation, batching."""
