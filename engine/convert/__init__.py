"""Readers for the file formats official weights come in, written from the formats' specifications so that importing
a checkpoint never needs the framework that wrote it.

``tf_checkpoint``: TensorFlow 1/2 "tensor bundle" checkpoints (``prefix.index`` + ``prefix.data-NNNNN-of-NNNNN``).
"""
