"""attnserve.plot_attention with matplotlib's Agg backend: the image holds the chosen map, the
axes carry the token labels, small maps show their values, and a real server's result plots."""
import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnserve import plot_attention  # noqa: E402
from attnserve.plot import attention_map  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labels(ticks):
    return [t.get_text() for t in ticks]


def test_draws_the_map_with_token_labels_values_and_colour_bar():
    grid = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]])
    ax = plot_attention(grid, tokens=["I", "am", "good"])
    np.testing.assert_array_equal(ax.images[0].get_array(), grid)
    assert ax.images[0].get_clim() == (0.0, 0.8)
    assert labels(ax.get_xticklabels()) == ["I", "am", "good"]
    assert labels(ax.get_yticklabels()) == ["I", "am", "good"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("keys", "queries")
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.2f}" for v in grid.ravel())
    assert len(ax.figure.axes) == 2  # the map and its colour bar
    png = io.BytesIO()
    ax.figure.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG\r\n\x1a\n")


def test_picks_a_head_or_the_average_of_a_4d_map(rng):
    maps = rng.random((2, 3, 4, 5))
    np.testing.assert_array_equal(attention_map(maps, head=2), maps[0, 2])
    np.testing.assert_array_equal(attention_map(maps, head=1, batch=1), maps[1, 1])
    np.testing.assert_allclose(attention_map(maps, head="average"), maps[0].mean(axis=0))
    np.testing.assert_array_equal(attention_map(maps[:, 0], batch=1), maps[1, 0])
    ax = plot_attention(maps, head="average")
    assert labels(ax.get_xticklabels()) == ["k0", "k1", "k2", "k3", "k4"]
    assert labels(ax.get_yticklabels()) == ["q0", "q1", "q2", "q3"]
    assert ax.get_title() == "average over heads"


def test_large_maps_have_no_cell_values_and_cross_attention_labels(rng):
    ax = plot_attention(rng.random((17, 3)), tokens=[f"t{i}" for i in range(17)],
                        key_tokens=["a", "b", "c"])
    assert not ax.texts
    assert labels(ax.get_xticklabels()) == ["a", "b", "c"]


def test_rejects_bad_heads_labels_and_missing_maps(rng):
    maps = rng.random((1, 2, 3, 3))
    with pytest.raises(ValueError, match="head 2 is out of range"):
        plot_attention(maps, head=2)
    with pytest.raises(ValueError, match="2 query and 2 key labels for a 3 x 3 map"):
        plot_attention(maps, tokens=["a", "b"])
    with pytest.raises(ValueError, match="rank 2, 3 or 4"):
        plot_attention(np.zeros(3))
    with pytest.raises(ValueError, match="no attention maps"):
        plot_attention(type("Result", (), {"attention": None})())


def test_plots_a_result_from_the_server_on_given_axes(client, rng):
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in range(3))
    result = client.attend(q, k, v, causal="upper_left")
    _, ax = plt.subplots()
    assert plot_attention(result, tokens=["a", "b", "c", "d"], head=1, ax=ax) is ax
    drawn = ax.images[0].get_array()
    np.testing.assert_allclose(drawn, result.attention[0, 1])
    assert np.all(drawn[np.triu_indices(4, 1)] == 0)  # causal: no key after its query
    assert ax.get_title() == "head 1"
