"""Keras layers used by bert4keras models; one concept per module."""
