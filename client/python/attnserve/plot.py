"""plot_attention: draws one attention map as a labelled heatmap with matplotlib.

matplotlib (Debian's python3-matplotlib) is imported only when a map is drawn, so the rest of
the package works without it.
"""
import numpy as np

# Maps this small get their values written in the cells.
_MAX_ANNOTATED = 16


def attention_map(result_or_map, head=0, batch=0):
    """The [Sq,Sk] map to draw, as float64.

    result_or_map: an AttendResult (its .attention), or an array [B,H,Sq,Sk] (Attend's maps),
    [B,Sq,Sk] (MultiHeadAttend with average_heads) or [Sq,Sk]. head: an index, or "average" for
    the mean over the heads (4-D maps only). batch: the batch item of a 3-D or 4-D map.
    """
    maps = getattr(result_or_map, "attention", result_or_map)
    if maps is None:
        raise ValueError("the result has no attention maps: call attend with maps='probabilities'")
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim not in (2, 3, 4):
        raise ValueError(f"expected a map of rank 2, 3 or 4, got shape {maps.shape}")
    if maps.ndim >= 3:
        maps = maps[batch]
    if maps.ndim == 3:
        if head == "average":
            return maps.mean(axis=0)
        if not 0 <= head < maps.shape[0]:
            raise ValueError(f"head {head} is out of range: the map has heads 0 to "
                             f"{maps.shape[0] - 1}")
        return maps[head]
    return maps


def plot_attention(result_or_map, tokens=None, head=0, ax=None, *, key_tokens=None, batch=0):
    """Draws the attention map of `head` (or head="average") of batch item `batch` on `ax`
    (default: a new figure) and returns the Axes.

    Queries are the rows, keys the columns. tokens labels both axes (self-attention), or only
    the queries when key_tokens labels the keys; the default labels are q0.. and k0... A colour
    bar runs from 0 to the largest value; maps up to 16x16 show each value in its cell.
    """
    import matplotlib.pyplot as plt

    grid = attention_map(result_or_map, head, batch)
    rows, cols = grid.shape
    if key_tokens is None:
        key_tokens = tokens
    row_labels = [f"q{i}" for i in range(rows)] if tokens is None else [str(t) for t in tokens]
    col_labels = ([f"k{j}" for j in range(cols)] if key_tokens is None
                  else [str(t) for t in key_tokens])
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"{len(row_labels)} query and {len(col_labels)} key labels for a "
                         f"{rows} x {cols} map")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.5 * cols, 0.8 + 0.5 * rows))
    top = float(grid.max()) if grid.size and grid.max() > 0 else 1.0
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=top)
    ax.figure.colorbar(image, ax=ax)
    ax.set_xticks(range(cols), col_labels, rotation=90)
    ax.set_yticks(range(rows), row_labels)
    ax.set_xlabel("keys")
    ax.set_ylabel("queries")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    if np.ndim(getattr(result_or_map, "attention", result_or_map)) == 4:
        ax.set_title("average over heads" if head == "average" else f"head {head}", pad=12)
    if max(rows, cols) <= _MAX_ANNOTATED:
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 0.6 * top else "black")
    return ax
