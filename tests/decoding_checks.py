"""The cached-versus-uncached decoding check shared by the GPT-2 and T5 tests."""
import numpy as np

SEARCHES = {
    "greedy": lambda d, x: d.greedy([x]),
    "beam": lambda d, x: d.beam_search([x], topk=3),
    "sample": lambda d, x: [s[0] for s in d.random_sample([x], 1, topk=5, seed=11)],
}


def assert_cached_equals_uncached(cached, full, batch, alone, minlen):
    """Greedy, beam 3 and seeded sampling agree token for token on `batch`,
    and beam search on each row alone (`alone[r]`, a batch of one padded to
    the batch's width: three beams, the shapes of the batch's greedy run, so
    nothing recompiles) gives row r's result."""
    results = {}
    for name, search in SEARCHES.items():
        a, b = search(cached, batch), search(full, batch)
        assert all(len(x) >= minlen for x in a), name
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=name)
        results[name] = a
    assert len({tuple(x) for x in results["greedy"]}) == len(results["greedy"])  # rows really differ
    for r, row in enumerate(alone):
        np.testing.assert_array_equal(SEARCHES["beam"](cached, row)[0], results["beam"][r], err_msg=f"row {r}")
