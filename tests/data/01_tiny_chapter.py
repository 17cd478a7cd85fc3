# %% [markdown]
# # Chapter 1 — A tiny chapter for the grader's tests

# %%
import numpy as np

from panopticlab.exercises import ch01

# %% [markdown]
# **Exercise 1.1**

# %%
def rgb_to_id(rgb):
    # BEGIN SOLUTION
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    # END SOLUTION


ch01.check_rgb_to_id(rgb_to_id);

# %% [markdown]
# **Exercise 1.2**

# %%
def semantic_from_panoptic(pan, categories):
    # BEGIN SOLUTION
    semantic = np.full(pan.id_map.shape, 255, dtype=np.int64)
    for segment in pan.segments:
        semantic[pan.id_map == segment.id] = segment.category_id
    return semantic
    # END SOLUTION


# %%
ch01.check_semantic_from_panoptic(semantic_from_panoptic);

# %% [markdown]
# **Exercise 1.3**

# %%
def count_instances(pan, categories):
    # BEGIN SOLUTION
    counts = {}
    for segment in pan.segments:
        if categories.isthing(segment.category_id) and not segment.iscrowd:
            name = categories.name(segment.category_id)
            counts[name] = counts.get(name, 0) + 1
    return counts
    # END SOLUTION


ch01.check_count_instances(count_instances);

# %%
print("the end")
