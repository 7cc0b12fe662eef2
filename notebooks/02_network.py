# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (zicht venv)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A criminal network: communities, brokers and disruption
#
# The Montagna meetings network (a Sicilian Mafia investigation; Cavallaro et al. 2020, PLoS ONE
# 15(8):e0236476) when the shared data folder is present, else Zachary's karate club as a
# stand-in. zicht's own functions do the work: Leiden communities, betweenness and brokers
# (`score_suspect_graph`, as in `restricted/network_members.parquet`), and the disruption curve
# of `zicht network disrupt`.

# %%
import os
import random
from pathlib import Path

import igraph as ig
import matplotlib.pyplot as plt
import networkx as nx
import pandas as pd

from zicht.features.settings import NetworkSettings
from zicht.models.network import score_suspect_graph, simulate_disruption

SHARED = Path(os.environ.get("ZICHT_SHARED", "../../shared"))
MONTAGNA = SHARED / "data/real/criminal_networks/montagna"
edges_file = MONTAGNA / "Montagna_meetings_edgelist.tsv"
if edges_file.is_file():
    edges = pd.read_csv(edges_file, sep="\t", header=None, names=["source", "target", "weight"])
    name = "Montagna meetings"
else:
    karate = nx.karate_club_graph()
    edges = pd.DataFrame(
        [(u, v, 1) for u, v in karate.edges()], columns=["source", "target", "weight"]
    )
    name = "karate club (Montagna data not found)"
edges[["source", "target"]] = edges[["source", "target"]].astype(str)
print(name, len(edges), "edges")

# %% [markdown]
# ## Communities and brokers

# %%
members = score_suspect_graph(
    pd.concat([edges["source"], edges["target"]]).unique(),
    edges.rename(columns={"source": "person_id_a", "target": "person_id_b"}),
    settings=NetworkSettings(),
)
print(members["community_id"].nunique(), "communities;", int(members["is_broker"].sum()), "brokers")
members.sort_values("betweenness", ascending=False).head(10)

# %%
g = ig.Graph.DataFrame(
    edges[["source", "target"]], directed=False, vertices=members[["person_id"]], use_vids=False
)
random.seed(1)  # igraph's layouts draw from Python's random
layout = g.layout_fruchterman_reingold(niter=500)
xy = pd.DataFrame(layout.coords, columns=["x", "y"])
fig, ax = plt.subplots(figsize=(8, 8))
for e in g.es:
    (x0, y0), (x1, y1) = xy.iloc[e.source], xy.iloc[e.target]
    ax.plot([x0, x1], [y0, y1], color="grey", linewidth=0.4, zorder=1)
ax.scatter(
    xy["x"],
    xy["y"],
    c=members["community_id"],
    cmap="tab20",
    s=30 + 600 * members["betweenness"],
    edgecolors=["black" if b else "none" for b in members["is_broker"]],
    zorder=2,
)
ax.set_title(f"{name}: communities (colour), betweenness (size), brokers (black ring)")
ax.set_axis_off()
plt.show()

# %% [markdown]
# ## Disruption: remove the most central first, follow the largest connected component

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for metric in ("betweenness", "degree"):
    for mode in ("sequential", "block"):
        curve = simulate_disruption(edges, metric=metric, mode=mode, block_size=5)
        ax.plot(curve["removed"], curve["lcc_share"], label=f"{metric}, {mode}")
ax.set_xlabel("nodes removed")
ax.set_ylabel("largest component / at start")
ax.set_title(name)
ax.legend()
plt.show()
