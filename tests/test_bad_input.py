"""Out-of-range ids and over-long sequences raise a clear ValueError on every entry point."""
import numpy as np
import pytest

from bert4keras.models import build_transformer_model

TINY = dict(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=24, max_position=12, segment_vocab_size=2)


def _inputs(length=8):
    ids = np.arange(1, length + 1, dtype="int32")[None].repeat(2, axis=0)
    return ids, np.zeros_like(ids)


def _entry_points(model, x):
    """Each way host arrays reach a model; the targets fit the MLM output."""
    y = np.zeros(x[0].shape, "int32")
    return {
        "predict": lambda: model.predict(x, verbose=0),
        "predict_on_batch": lambda: model.predict_on_batch(x),
        "fit": lambda: model.fit(x, y, epochs=1, verbose=0),
        "evaluate": lambda: model.evaluate(x, y, verbose=0),
        "train_on_batch": lambda: model.train_on_batch(x, y),
        "test_on_batch": lambda: model.test_on_batch(x, y),
        "eager call": lambda: model(x),
        "dict input": lambda: model.predict({"Input-Token": x[0], "Input-Segment": x[1]}, verbose=0),
    }


@pytest.fixture(scope="module")
def model():
    model = build_transformer_model(with_mlm=True, **TINY)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


CASES = {
    "negative token": (0, -1, r"input 'Input-Token': token ids must be in \[0, 60\) \(vocab_size=60\), got -1"),
    "token at vocab": (0, 60, r"input 'Input-Token': token ids must be in \[0, 60\) \(vocab_size=60\), got 60"),
    "segment at limit": (1, 2, r"input 'Input-Segment': segment ids must be in \[0, 2\) "
                               r"\(type_vocab_size=2\), got 2"),
    "negative segment": (1, -3, r"input 'Input-Segment'.*got -3"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_range_ids_on_every_entry_point(model, case):
    which, value, message = CASES[case]
    for entry, run in _entry_points(model, _inputs()).items():
        x = list(_inputs())
        x[which] = x[which].copy()
        x[which][1, 3] = value
        run = _entry_points(model, x)[entry]
        with pytest.raises(ValueError, match=message + r" at index \[1, 3\]"):
            run()


def test_too_long_sequence_on_every_entry_point(model):
    for entry, run in _entry_points(model, list(_inputs(length=13))).items():
        with pytest.raises(ValueError, match=r"input 'Input-Token': sequence length 13 exceeds the "
                                             r"model's 12 positions \(max_position=12\)"):
            run()


def test_valid_inputs_still_run_and_relative_families_take_long_inputs(model):
    assert model.predict(list(_inputs(length=12)), verbose=0)[1].shape == (2, 12, 60)
    for name in ("roformer", "nezha", "roformer_v2"):
        relative = build_transformer_model(model=name, **TINY)
        assert relative.predict(list(_inputs(length=20)), verbose=0).shape == (2, 20, 16)
        ids, segs = _inputs(length=20)
        ids[0, 0] = 60
        with pytest.raises(ValueError, match="token ids must be in"):
            relative.predict([ids, segs], verbose=0)


def test_limits_survive_keras_round_trip(model, tmp_path):
    import keras

    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    ids, segs = _inputs()
    ids[0, 0] = -5
    with pytest.raises(ValueError, match="token ids must be in"):
        loaded.predict([ids, segs], verbose=0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_decoder_refuses_bad_prefixes_and_overlong_maxlen(use_cache):
    from bert4keras.generation import Seq2SeqDecoder

    lm = build_transformer_model(application="lm", with_mlm=True, **TINY)
    ids, segs = _inputs(length=5)
    decoder = Seq2SeqDecoder(lm, end_id=3, maxlen=7, use_cache=use_cache)
    assert len(decoder.greedy([ids, segs])) == 2  # 5 + 7 = 12 positions: fits
    with pytest.raises(ValueError, match=r"12 positions \(max_position\).*maxlen=8 needs 13"):
        Seq2SeqDecoder(lm, end_id=3, maxlen=8, use_cache=use_cache).greedy([ids, segs])
    ids[0, 1] = 77
    with pytest.raises(ValueError, match=r"input 'Input-Token': token ids must be in \[0, 60\).*got 77"):
        decoder.greedy([ids, segs])
