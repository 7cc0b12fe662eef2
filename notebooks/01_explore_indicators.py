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
# # Explore the indicators of a run
#
# A `tiny` synthetic Netherlands, the whole pipeline on it, then the restricted indicators
# (analysts only) and the partner export side by side, and a map of one indicator per buurt.
# Point `INPUT` and `OUTPUT` at a real run to explore that one instead (set `RUN = False`), or
# set the environment variable `ZICHT_EXAMPLE_RUN` to a folder holding `input/` and `output/`
# of a finished run (the test suite does that to reuse its own run).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import shapely
from matplotlib.collections import PatchCollection
from matplotlib.patches import Polygon

from zicht.jobs import run as run_job
from zicht.jobs import synth as synth_job

EXISTING = os.environ.get("ZICHT_EXAMPLE_RUN")
RUN = EXISTING is None
WORK = Path(EXISTING) if EXISTING else Path(tempfile.mkdtemp(prefix="zicht-nb01-"))
INPUT, OUTPUT = WORK / "input", WORK / "output"
INDICATOR, YEAR = "drugs.incidents_per_1000", 2024

# %%
if RUN:
    assert synth_job.main(["--scale", "tiny", "--seed", "1", "--out", str(INPUT)]) == 0
    assert run_job.main(["--input", str(INPUT), "--output", str(OUTPUT)]) == 0

# %% [markdown]
# ## Restricted indicators (before disclosure control) and the partner export

# %%
indicators = pd.read_parquet(OUTPUT / "restricted/indicators.parquet")
export = pd.read_csv(OUTPUT / "export/indicators_buurt.csv", dtype={"area_code": str})
codebook = pd.read_csv(OUTPUT / "export/codebook.csv")
print(indicators.groupby("level").size())
print(export["status"].value_counts())
codebook.loc[codebook["indicator"] == INDICATOR, ["indicator", "unit", "definition"]]

# %% [markdown]
# How much disclosure control removes per indicator, at buurt level:

# %%
suppressed = (
    export.assign(is_suppressed=export["status"].eq("suppressed"))
    .groupby("indicator")["is_suppressed"]
    .mean()
    .sort_values(ascending=False)
)
suppressed.head(10)

# %% [markdown]
# ## A map: the indicator per buurt (restricted values), suppressed cells hatched

# %%
areas = pd.read_parquet(INPUT / "areas.parquet")
restricted = indicators.query("level == 'buurt' and indicator == @INDICATOR and year == @YEAR")
published = export.query("indicator == @INDICATOR and year == @YEAR")
merged = (
    areas[["buurt_code", "geometry_wkt"]]
    .merge(restricted[["area_code", "value"]], left_on="buurt_code", right_on="area_code")
    .merge(published[["area_code", "status"]], on="area_code")
)
shapes = shapely.from_wkt(merged["geometry_wkt"].to_numpy())
patches, values, hatched = [], [], []
for shape, value, status in zip(shapes, merged["value"], merged["status"], strict=True):
    for poly in getattr(shape, "geoms", [shape]):
        patches.append(Polygon(list(poly.exterior.coords)))
        values.append(value)
        hatched.append(status == "suppressed")

fig, ax = plt.subplots(figsize=(7, 7))
coll = PatchCollection(patches, cmap="viridis", edgecolor="white", linewidth=0.3)
coll.set_array(pd.Series(values).fillna(0).to_numpy())
ax.add_collection(coll)
ax.add_collection(
    PatchCollection(
        [p for p, h in zip(patches, hatched, strict=True) if h],
        facecolor="none",
        edgecolor="red",
        hatch="//",
        linewidth=0.0,
    )
)
ax.autoscale_view()
ax.set_aspect("equal")
ax.set_title(f"{INDICATOR}, {YEAR} (hatched: suppressed in the export)")
fig.colorbar(coll, ax=ax, shrink=0.7)
plt.show()

# %% [markdown]
# ## Area typology and hot spots

# %%
typology = pd.read_parquet(OUTPUT / "restricted/area_typology.parquet")
typology.groupby(["year", "cluster"]).size().unstack(fill_value=0)
