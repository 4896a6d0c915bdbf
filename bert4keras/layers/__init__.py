"""Keras layers used by bert4keras models; one concept per module."""
from bert4keras.layers.attention import AttentionMask, MultiHeadAttention
from bert4keras.layers.embeddings import (
    BiasAdd,
    Embedding,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
    TokenSlice,
)
from bert4keras.layers.feedforward import FeedForward
from bert4keras.layers.encoder_decoder import CausalMask, PaddedStates, RelativePositionBias
from bert4keras.layers.normalization import LayerNormalization
from bert4keras.layers.crf import ConditionalRandomField, MaximumEntropyMarkovModel
from bert4keras.layers.global_pointer import EfficientGlobalPointer, GlobalPointer
